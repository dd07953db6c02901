"""cyclegan_edu: CycleGAN (Zhu, Park, Isola and Efros, ICCV 2017), small, faithful and tested.

One concept per module, in the order data flows through a run:

================  ==============================================================
``config``        every knob in one dataclass; the presets ``ci``, ``cpu``, ``gpu``, ``paper``
``data``          loading images, the official preprocessing, the folder datasets
``domains``       offline domains with ground truth, and packaged real ones
``networks``      ResNet generator, U-Net, PatchGAN and friends, receptive fields
``losses``        the GAN, cycle and identity losses (Eq. 1-3, §5.2)
``pool``          the image history buffer (§4)
``perceptual``    a perceptual (feature) cycle loss on fixed random features
``models``        CycleGAN and pix2pix: nets, optimizers and one ``step`` each
``distancegan``   DistanceGAN: one-sided, distance-keeping translation (Benaim & Wolf 2017)
``train``         the Trainer: schedule, checkpoints, history, callbacks
``distributed``   training on several processes: torchrun, DistributedDataParallel
``pretrained``    loading the official pretrained generators
``inference``     translating image files with a generator (the ``translate`` command)
``metrics``       errors against ground truth, FCN-style scores, diversity, KID
``judges``        small classifiers that score translations
``diagnostics``   training dynamics: D's score maps, D overpowering G, mode collapse
``evaluation``    every score of a trained model on a task, the same numbers everywhere
``steganography`` what the cycle hides: F(G(x)) when G(x) is slightly changed (Chu et al. 2017)
``experiments``   the book's experiments declared once; their committed results (``results/``)
``monitor``       what a training model shows: samples, diversity ÷ the inputs', D's output map
``film``          a recorded training film (a Trainer callback), played by ``widgets.training_film``
``viz``           figures; ``widgets``: notebook explorers; ``dashboard``: live training
``grader``        the problem sets' checks: a student's answer against the package, PASS or one FAIL line
================  ==============================================================
"""
import importlib

# Where each public name lives. They are imported on first use (PEP 562), so that the command line
# (``python -m cyclegan_edu toy --list``) and the data scripts start without loading torch.
_EXPORTS = {
    "config": ["Config", "get_preset", "PRESETS"],
    "networks": ["ResnetGenerator", "UnetGenerator", "NLayerDiscriminator", "PixelDiscriminator",
                 "FullImageDiscriminator", "build_discriminator", "add_spectral_norm", "init_weights",
                 "receptive_field", "output_map_size", "count_parameters"],
    "losses": ["GANLoss", "cycle_loss", "identity_loss"],
    "pool": ["ImagePool"],
    "models": ["CycleGAN", "Pix2Pix", "build_model"],
    "distancegan": ["DistanceGAN"],
    "train": ["Trainer", "load_model", "linear_decay"],
    "pretrained": ["load_generator"],
    "inference": ["open_translator", "translate_paths"],
    "diagnostics": ["ModeCollapseMonitor", "DScoreMonitor", "detect_d_overpowering"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__version__ = "0.1.0"
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
