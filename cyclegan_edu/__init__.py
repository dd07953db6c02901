"""cyclegan_edu: CycleGAN (Zhu, Park, Isola and Efros, ICCV 2017), small, faithful and tested.

One concept per module, in the order data flows through a run:

================  ==============================================================
``config``        every knob in one dataclass; the presets ``ci``, ``cpu``, ``gpu``, ``paper``
``data``          loading images, the official preprocessing, the folder datasets
``domains``       offline domains with ground truth, and packaged real ones
``networks``      ResNet generator, U-Net, PatchGAN and friends, ``receptive_field``
``losses``        the GAN, cycle and identity losses (Eq. 1-3, §5.2)
``pool``          the image history buffer (§4)
``models``        CycleGAN and pix2pix: nets, optimizers and one ``step`` each
``train``         the Trainer: schedule, checkpoints, history, callbacks
``pretrained``    loading the official pretrained generators
``metrics``       errors against ground truth, FCN-style scores, diversity
``judges``        small classifiers that score translations
``viz``           figures; ``widgets``: notebook explorers
================  ==============================================================
"""
from .config import Config, get_preset, PRESETS
from .networks import (ResnetGenerator, UnetGenerator, NLayerDiscriminator, PixelDiscriminator,
                       FullImageDiscriminator, init_weights, receptive_field, count_parameters)
from .losses import GANLoss, cycle_loss, identity_loss
from .pool import ImagePool
from .models import CycleGAN, Pix2Pix, build_model
from .train import Trainer, load_model, linear_decay
from .pretrained import load_generator

__version__ = "0.1.0"
__all__ = ["Config", "get_preset", "PRESETS", "ResnetGenerator", "UnetGenerator", "NLayerDiscriminator",
           "PixelDiscriminator", "FullImageDiscriminator", "init_weights", "receptive_field", "count_parameters",
           "GANLoss", "cycle_loss", "identity_loss", "ImagePool", "CycleGAN", "Pix2Pix", "build_model",
           "Trainer", "load_model", "linear_decay", "load_generator"]
