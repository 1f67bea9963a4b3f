"""Segmentation: models that output a mask per image (U-Nets trained by MedLens on real
volumes), running them over whole volumes, comparing masks with a ground truth (Dice,
IoU, HD95), and writing masks (NIfTI, DICOM SEG)."""
