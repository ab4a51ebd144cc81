"""Clinical DICOM: ultrasound images and cine loops in, DICOM SEG out.

- `reading`: `read_dicom` gives the pixels (T, H, W[, 3]) with the spacing of the
  ultrasound region that holds the image (cm in the file, mm here), the frame times and
  a mask of that region (burned-in text and overlays outside it are left out of
  intensity normalisation); `is_dicom` recognises a DICOM file by its content.
- `regions`: the Sequence of Ultrasound Regions, parsed and chosen.
- `seg`: `write_dicom_seg` / `read_dicom_seg` (highdicom), one segment per object,
  frames referencing the source instance and its frames.

Nothing is imported here, so `import SAMUSALib.dicom.regions` loads neither pydicom nor
highdicom.
"""
