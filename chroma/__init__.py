"""chroma: image-colorization research on one TensorFlow/Keras training engine."""

__version__ = "0.1.0"
