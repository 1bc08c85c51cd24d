"""Backbone + head, freezing and unfreezing, optimizers and compile."""

from . import InputError
from .backbones import backbone_entry
from .compat import keras


def _tinycnn(input_shape):
    """Test-only backbone: three conv blocks, fast on a CPU. Not for real experiments."""
    inp = keras.Input(shape=input_shape)
    x = inp
    for i, f in enumerate((16, 32, 64)):
        x = keras.layers.Conv2D(f, 3, strides=2, padding="same", use_bias=False, name="conv%d" % i)(x)
        x = keras.layers.BatchNormalization(name="bn%d" % i)(x)
        x = keras.layers.Activation("relu", name="relu%d" % i)(x)
    return keras.Model(inp, x, name="tinycnn")


def make_base(backbone, image_size, weights_path=None):
    shape = (int(image_size[0]), int(image_size[1]), 3)
    app = backbone_entry(backbone)["application"]
    try:
        if app:
            base = getattr(keras.applications, app)(include_top=False, weights=None, input_shape=shape)
        else:
            base = _tinycnn(shape)
    except ValueError as e:
        raise InputError("cannot build %s for image size %s: %s" % (backbone, list(image_size), e))
    if weights_path:
        # Always an explicit, verified path: Keras 2 would only look in ~/.keras.
        try:
            base.load_weights(weights_path)
        except Exception as e:
            raise InputError("weights file %s cannot be loaded into %s (corrupt, or for another "
                             "model): %s: %s" % (weights_path, backbone, type(e).__name__, e))
    return base


def build(model_spec, image_size, num_classes, weights_path=None):
    backbone = model_spec["backbone"]
    base = make_base(backbone, image_size, weights_path)
    base.trainable = False
    inputs = keras.Input(shape=(int(image_size[0]), int(image_size[1]), 3), name="image")
    # training=False: BatchNormalization stays in inference mode, also after unfreezing.
    x = base(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    dropout = float(model_spec.get("dropout") or 0)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    if num_classes == 2:
        outputs = keras.layers.Dense(1, dtype="float32", name="logits")(x)
    else:
        outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name="hpctl_" + backbone)


def find_base(model):
    for lyr in model.layers:
        if isinstance(lyr, keras.Model):
            return lyr
    raise InputError("model %s has no nested backbone model" % model.name)


def set_trainable(model, unfreeze_layers):
    """0: base frozen; -1: whole base trainable; N > 0: the base's last N layers trainable."""
    base = find_base(model)
    n = int(unfreeze_layers)
    layers = base.layers
    first = 0 if n < 0 else max(0, len(layers) - n)
    # base.trainable first (Keras 2 passes it on to every layer), then each layer explicitly
    # (Keras 3 does not pass it on to a Functional's layers).
    base.trainable = n != 0
    for i, lyr in enumerate(layers):
        lyr.trainable = n != 0 and i >= first
    return base


def optimizer(opt_spec):
    name = opt_spec["name"]
    lr = float(opt_spec["learning_rate"])
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=float(opt_spec.get("momentum", 0.0)))
    raise InputError("unknown optimizer %r" % name)


def compile_model(model, opt_spec, num_classes):
    if num_classes == 2:
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
        metric = keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)  # logits: 0 <=> p=0.5
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(optimizer=optimizer(opt_spec), loss=loss, metrics=[metric])
    return model
