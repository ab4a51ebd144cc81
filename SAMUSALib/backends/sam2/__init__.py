"""The SAM2 family (SAM 2.1, MedSAM2, SAMUSA-trained SAM2 checkpoints)."""
