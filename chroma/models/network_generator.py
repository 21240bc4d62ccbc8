"""Any Keras network of L to ab as a chroma generator: your own network, trained by the engine, served by export."""

import keras

from chroma.models.generator import Generator


@keras.saving.register_keras_serializable(package="chroma")
class NetworkGenerator(Generator):
    """{"L": scaled L (B,H,W,1)} -> {"ab": network(L)}, for a Keras `network` of scaled L -> scaled ab (B,H,W,2).

    The network reads nothing but L; a generator that reads more declares it
    (chroma.models.generator). It is built here on images of any size, so a
    network with a fixed input size must accept (None, None, None, 1).
    """

    def __init__(self, network, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.build({"L": (None, None, None, 1)})

    def call(self, batch, training=False):
        return {"ab": self.network(batch["L"], training=training)}

    def get_config(self):
        return {**super().get_config(), "network": keras.saving.serialize_keras_object(self.network)}

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "network": keras.saving.deserialize_keras_object(config["network"])})
