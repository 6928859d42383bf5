"""Generation: GAN, DCGAN, WGAN, WGAN-GP, cGAN, AC-GAN, LAPGAN, ProGAN; text to image; pix2pix, CycleGAN, DiscoGAN,
DualGAN; LapSRN; RED-Net.

Families, each its own engine Task: GANs (`GANTask`: GAN, DCGAN, WGAN, WGAN-GP, cGAN, AC-GAN; its subclasses
`LAPGANTask` for LAPGAN and `ProGANTask` for Progressive GAN), text to image (`Text2ImageTask`: GAN-INT-CLS,
StackGAN), translation (`TranslationTask`: pix2pix, CycleGAN, DiscoGAN, DualGAN) and restoration
(`RestorationTask`: LapSRN super-resolution, RED-Net). `make_task` (alias `GenerateTask`) picks the family from the
model's name; `GeneratorPredictor` samples, translates, upscales, restores and evaluates (FID, KID, IS; PSNR, SSIM);
`evaluate_folders` scores two folders of images (PSNR, SSIM: RGB in [0, 1], or the SR papers' Y channel with a
cropped border).
"""

from mmkit.lazy import lazy_exports
from mmkit.tasks.registry import TaskSpec

SPEC = TaskSpec(__name__, __doc__, what="a generation model", order=55, factory="task:make_task")

__getattr__ = lazy_exports(
    __name__,
    options="GenerateOptions",
    common="GenerateMeta GenerateFamily pixel_fid",
    gan="GANTask GAN_MODELS CONDITIONAL MODE_SEEKING",
    translation="TranslationTask",
    restoration="RestorationTask",
    text2image="Text2ImageTask draw",
    task="MODEL_FAMILY family_of make_task GenerateTask build_generator translate_batch",
    predictor="GeneratorPredictor load_generator sample apply evaluate feature_network FEATURE_NET_EPOCHS",
    folders="evaluate_folders image_pairs",
)
