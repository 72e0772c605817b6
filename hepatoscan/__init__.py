"""HepatoScan: liver and liver-tumor segmentation of CT on a laptop or a Raspberry-class board.

The runtime never imports TensorFlow or Keras.
"""
__version__ = "0.1.0"
