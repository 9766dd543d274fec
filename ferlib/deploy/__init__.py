"""Using a trained model: the predictor on photos and videos, ONNX export, inference optimisation.

``predictor`` (load a checkpoint, predict on images), ``video`` (videos, the webcam, many
paths), ``outputs`` (drawing and complete-or-nothing files), ``optimize`` (a faster copy for
the CPU), ``export`` (ONNX, int8) and ``demo`` (a SynthFER video to try it on).
"""
