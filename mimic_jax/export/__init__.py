"""Policy export for deployment (ONNX, see ``docs/evaluation.md``)."""
