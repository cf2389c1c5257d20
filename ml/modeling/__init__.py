"""Modelling: encoder pretraining, fine-tuning, encoding, runtimes (ONNX, PyTorch), export, and the one Scorer."""
