"""Policy export for deployment (docs/deploy.md): ``writer.export_deployment`` writes the ONNX graph
(``onnx``), its ``deploy.yaml`` (``deploy_config``, robot facts from ``model_facts``) and the robot model side
by side; ``actor`` is the one place that reads a trained policy object."""
