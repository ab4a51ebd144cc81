"""Training: the SAMUSA boundary loss, prompt sampling, ultrasound augmentations and the
fine-tuning loops whose checkpoints the engine loads.

- `losses`: L_boundary (paper, eq. 1) and the models' own losses;
- `sampling`: boundary points, region clicks, boxes and temporal windows as simulated users give them;
- `augment` (+ `augment_gallery`, its picture): ultrasound augmentations (speckle, attenuation/TGC, shadows, fan, blur, gain; geometric and temporal);
- `data`, `embeddings`: training images grouped by patient, embeddings cached once;
- `lite`: SAMUSA-Lite (LiteMedSAM learning boundary points) on a CPU;
- `sam2`: fine-tuning SAM2 (image and video batches);
- `command`: ``samusa train CONFIG.yaml``.
"""
