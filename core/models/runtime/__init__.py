"""The runtimes a model runs on: Keras (TensorFlow) and ONNX (onnxruntime). One loader
and one compiled forward pass for Keras, one session and one locked run path for ONNX."""
