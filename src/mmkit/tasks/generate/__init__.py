"""Generation in three families, each its own engine Task: GANs (`GANTask`: GAN, DCGAN, WGAN-GP, cGAN, AC-GAN),
translation (`TranslationTask`: pix2pix, CycleGAN) and restoration (`RestorationTask`: LapSRN super-resolution,
RED-Net). `make_task` (alias `GenerateTask`) picks the family from the model's name; `GeneratorPredictor` samples,
translates, upscales, restores and evaluates (FID, KID, IS; PSNR, SSIM).

The names below load on first use, so that the task registry reads `SPEC` without importing torch. (No exported
name is also a submodule's name: once imported, a submodule would shadow it as an attribute of this package.)
"""

from mmkit.tasks.generate.options import RECIPES
from mmkit.tasks.registry import TaskSpec, lazy_exports

SPEC = TaskSpec(
    name="generate",
    help="Generation: GAN, DCGAN, WGAN-GP, cGAN, AC-GAN; pix2pix, CycleGAN; LapSRN super-resolution; RED-Net.",
    package=__name__,
    factory="mmkit.tasks.generate.task:make_task",
    what="a generation model",
    recipes=RECIPES,
    order=55,
)

_EXPORTS = {
    "GenerateOptions": "options",
    "GenerateMeta": "common",
    "GenerateFamily": "common",
    "pixel_fid": "common",
    "GANTask": "gan",
    "GAN_MODELS": "gan",
    "CONDITIONAL": "gan",
    "MODE_SEEKING": "gan",
    "TranslationTask": "translation",
    "RestorationTask": "restoration",
    "MODEL_FAMILY": "task",
    "family_of": "task",
    "make_task": "task",
    "GenerateTask": "task",
    "build_generator": "task",
    "translate_batch": "task",
    "GeneratorPredictor": "predictor",
    "load_generator": "predictor",
    "sample": "predictor",
    "apply": "predictor",
    "evaluate": "predictor",
    "feature_network": "predictor",
    "FEATURE_NET_EPOCHS": "predictor",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)
