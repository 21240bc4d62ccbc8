"""sRGB <-> CIE L*a*b* (D65, 2 degree observer) as TensorFlow ops.

The ops are pure TF, so the same code runs in `tf.data`, inside a train step and
inside an exported SavedModel. Constants follow `skimage.color.rgb2lab` /
`lab2rgb`, which the tests compare against.

Every paper colorizes in Lab: the network sees L and predicts a*b*. The papers
scale both into [-1, 1] (nampouri, section 4.1): L / 50 - 1 and ab / 110.
"""

import tensorflow as tf

# sRGB (linear) -> XYZ, the matrix skimage uses.
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
# D65 reference white, 2 degree observer.
_WHITE_D65 = (0.95047, 1.0, 1.08883)

_LAB_EPSILON = 0.008856  # below this the cube root is replaced by a line
_LAB_KAPPA = 7.787
_LAB_OFFSET = 16.0 / 116.0
_F_INVERSE_KNEE = 0.2068966  # f(_LAB_EPSILON)
# Bounds on f(X/Xn) etc. before cubing: far outside any colour, they keep
# absurd predictions (ab = 1e30) finite instead of inf - inf = NaN.
_F_BOUND = 10.0

L_SCALE = 50.0
AB_SCALE = 110.0


def _as_float_rgb(rgb):
    rgb = tf.convert_to_tensor(rgb)
    if rgb.dtype == tf.uint8:
        return tf.cast(rgb, tf.float32) / 255.0
    if not rgb.dtype.is_floating:
        raise TypeError(f"RGB must be uint8 or float in [0, 1], got {rgb.dtype}")
    return rgb


def _srgb_to_linear(rgb):
    # max() inside the power keeps its gradient finite on the branch tf.where discards.
    curve = tf.pow((tf.maximum(rgb, 0.04045) + 0.055) / 1.055, 2.4)
    return tf.where(rgb > 0.04045, curve, rgb / 12.92)


def _linear_to_srgb(linear):
    # Clipping before the curve equals skimage's clipping after it (the curve is
    # monotone with 0 -> 0 and 1 -> 1), and keeps every output in [0, 1].
    linear = tf.clip_by_value(linear, 0.0, 1.0)
    curve = 1.055 * tf.pow(tf.maximum(linear, 0.0031308), 1.0 / 2.4) - 0.055
    return tf.where(linear > 0.0031308, curve, linear * 12.92)


def _matmul_channels(image, matrix):
    matrix = tf.constant(matrix, dtype=image.dtype)
    return tf.tensordot(image, tf.transpose(matrix), axes=1)


def rgb_to_lab(rgb):
    """sRGB in [0, 1] (or uint8), channels last -> L* in [0, 100], a*, b*."""
    rgb = _as_float_rgb(rgb)
    xyz = _matmul_channels(_srgb_to_linear(rgb), _XYZ_FROM_RGB)
    xyz = xyz / tf.constant(_WHITE_D65, dtype=xyz.dtype)
    cube_root = tf.pow(tf.maximum(xyz, _LAB_EPSILON), 1.0 / 3.0)
    f = tf.where(xyz > _LAB_EPSILON, cube_root, _LAB_KAPPA * xyz + _LAB_OFFSET)
    fx, fy, fz = tf.unstack(f, axis=-1)
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab):
    """L*a*b* -> sRGB in [0, 1]. Out-of-gamut colours are clipped, never NaN."""
    lab = tf.convert_to_tensor(lab)
    lightness, a, b = tf.unstack(lab, axis=-1)
    fy = (lightness + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = tf.maximum(fy - b / 200.0, 0.0)  # skimage clips negative z here
    f = tf.clip_by_value(tf.stack([fx, fy, fz], axis=-1), -_F_BOUND, _F_BOUND)
    xyz = tf.where(f > _F_INVERSE_KNEE, f * f * f, (f - _LAB_OFFSET) / _LAB_KAPPA)
    xyz = xyz * tf.constant(_WHITE_D65, dtype=xyz.dtype)
    rgb_from_xyz = tf.linalg.inv(tf.constant(_XYZ_FROM_RGB, dtype=tf.float64))
    linear = tf.tensordot(xyz, tf.cast(tf.transpose(rgb_from_xyz), xyz.dtype), axes=1)
    return _linear_to_srgb(linear)


def scale_lab(lab):
    """Lab -> (L, ab) each in [-1, 1] as the papers feed them to networks."""
    return lab[..., :1] / L_SCALE - 1.0, lab[..., 1:] / AB_SCALE


def unscale_lab(scaled_l, scaled_ab):
    """Inverse of `scale_lab`: (L, ab) in [-1, 1] -> one Lab tensor."""
    return tf.concat([(scaled_l + 1.0) * L_SCALE, scaled_ab * AB_SCALE], axis=-1)


def rgb_to_scaled_lab(rgb):
    """sRGB -> (L, ab) scaled to [-1, 1]: a network's input and its target."""
    return scale_lab(rgb_to_lab(rgb))


def scaled_lab_to_rgb(scaled_l, scaled_ab):
    """A network's L input and ab prediction (scaled) -> sRGB in [0, 1]."""
    return lab_to_rgb(unscale_lab(scaled_l, scaled_ab))
