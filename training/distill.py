"""Cross-window distillation: fine-tune a model on exports while keeping it what it was elsewhere.

Every fine-tune on this data so far traded: what lifted narrow-window exports (W150/L30) cost
liver Dice on unseen patients, validation Dice or lesions, because nothing held the network to
what it already did well. Here the model being fine-tuned (the student) sees each training
sample as rendered (any window, gamma, JPEG), while a frozen copy of the starting model (the
teacher) sees the same slice, with the same crop, noise and blur, through its best view: the
model's own HU window for HU sources, and the export as the runtime reads it for 8-bit ones.
Beside the expert labels, the student is taught the teacher's probabilities from that view.
On the HU path the two views are one, so there it is held to the starting model; on an export
it is taught what the starting model would see in HU.

Measured (docs/model_history.md, v25 to v30): at weight 1 it changed no held-out figure by more
than the control run's noise, and at 5 and 20 it cost validation Dice and lesions; what had cost
the unseen patients was a second round of pseudo labels. Kept so those runs can be repeated.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers

from hepatoscan.preprocessing import InputSpec, prepare_slice


def teacher_view(img: np.ndarray, is_hu: bool, spec: InputSpec) -> np.ndarray:
    """The teacher's input for one augmented slice, before it is rendered for the student.

    img: (H, W) float32 HU (``is_hu``) or grey levels in [0, 255] after the sample's crop, noise and
    blur, at the model's input size. Read as the runtime reads it (prepare_slice): HU through the
    model's HU window, an 8-bit export with its window estimated, as the teacher was scored and its
    pseudo labels made (through their recorded window instead, the MSD slices, 0 to 255 HU, show fat
    at 0 HU, a sight the teacher never met on the HU path). -> (H, W) float32 in [0, 1].
    """
    pixels = img if is_hu else np.rint(np.clip(img, 0.0, 255.0))  # an export holds whole grey levels
    return prepare_slice(pixels, is_hu, spec)[0]


def with_teacher(student: keras.Model, teacher: keras.Model) -> keras.Model:
    """(student input, teacher input) -> (B, H, W, 4): the student's two channels, then the frozen
    teacher's (it runs in inference mode and none of its weights train)."""
    teacher.trainable = False
    teacher.name = "teacher"  # both are "hepatoscan_unet"; one graph needs unique names
    x_student = keras.Input(student.input_shape[1:], name="student_input")
    x_teacher = keras.Input(teacher.input_shape[1:], name="teacher_input")
    out = layers.Concatenate(name="student_teacher")([student(x_student), teacher(x_teacher, training=False)])
    return keras.Model([x_student, x_teacher], out, name="distill")
