"""Face crops for recognition models: landmark alignment (similarity transform) and box crops with a margin.

    det = load_mtcnn().detect(image)[0]                     # mmkit.models.mtcnn
    aligned = align_faces(image, det.landmarks, size=112)   # [N, 3, 112, 112] uint8, eyes/nose/mouth in place
    crops = crop_faces(image, det.boxes, size=160, margin=32)   # facenet-pytorch's crops, [N, 3, 160, 160]

`align_faces` estimates, per face, the least-squares similarity transform (rotation, uniform scale, translation;
no reflection, no shear) from the five detected landmarks onto a canonical five-point template, and warps the
image with `affine_grid` / `grid_sample` (bilinear, black outside the image), all faces in one call. The template
is the one widely used with ArcFace / InsightFace recognition models at 112×112 (`ARCFACE_TEMPLATE_112`: left eye,
right eye, nose tip, left and right mouth corners), scaled to `size`.

Coordinates are continuous pixels: pixel i spans [i, i + 1), as in `mmkit.models.mtcnn`. The 112-px template is
given, as published, in pixel-index coordinates (pixel centres at integers) and is shifted by half a pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align

from mmkit.errors import MMKitError

__all__ = ["ARCFACE_TEMPLATE_112", "align_faces", "crop_faces", "estimate_similarity", "face_template"]

# (x, y) in a 112×112 crop: left eye, right eye, nose tip, left mouth corner, right mouth corner (InsightFace).
ARCFACE_TEMPLATE_112 = torch.tensor(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)


def face_template(size: int = 112, margin: float = 0.0) -> Tensor:
    """The ArcFace five-point template in a size×size output, [5, 2] continuous pixels.

    `margin` (pixels of the output) is extra context around the face: the template is scaled to size − margin
    and centred, so a margin of 32 at size 160 leaves 16 px more on every side than margin 0."""
    if not 0 <= margin < size:
        raise MMKitError(f"face template: margin must be in [0, size={size}), got {margin}")
    return (ARCFACE_TEMPLATE_112 + 0.5) * ((size - margin) / 112) + margin / 2


def estimate_similarity(src: Tensor, dst: Tensor) -> Tensor:
    """Least-squares similarity transforms mapping points `src` [N, K, 2] onto `dst` [K, 2] (or [N, K, 2]).

    Returns [N, 2, 3] matrices M with dst ≈ M[:, :, :2] @ p + M[:, :, 2]. Closed form: with centred points,
    M[:, :, :2] = [[a, −b], [b, a]], a = Σ(p·q) / Σ|p|², b = Σ(p × q) / Σ|p|² (the Umeyama solution)."""
    src = src.double()
    dst = dst.to(src).expand_as(src)
    mu_s, mu_d = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    p, q = src - mu_s, dst - mu_d
    var = (p**2).sum((1, 2)).clamp(min=1e-12)
    a = (p * q).sum((1, 2)) / var
    b = (p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]).sum(1) / var
    rot = torch.stack([torch.stack([a, -b], 1), torch.stack([b, a], 1)], 1)  # [N, 2, 2]
    t = mu_d[:, 0] - (rot @ mu_s[:, 0, :, None])[..., 0]
    return torch.cat([rot, t[:, :, None]], 2).float()


def _rgb_float(image: Tensor, what: str) -> Tensor:
    """uint8 CHW (or HW) → float [1, 3, H, W]; grayscale repeated to 3 channels, alpha dropped."""
    if not isinstance(image, Tensor) or image.dtype != torch.uint8:
        raise MMKitError(f"{what}: expected a uint8 image tensor, got {getattr(image, 'dtype', type(image))}")
    if image.dim() == 2:
        image = image[None]
    if image.dim() != 3 or image.shape[0] not in (1, 3, 4):
        raise MMKitError(f"{what}: expected a CHW image with 1, 3 or 4 channels, got {tuple(image.shape)}")
    image = image[:3] if image.shape[0] == 4 else image.expand(3, -1, -1)
    return image[None].float()


def _to_uint8(x: Tensor) -> Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def align_faces(image: Tensor, landmarks: Tensor, size: int = 160, margin: float = 0.0) -> Tensor:
    """Warp each face so that its five landmarks [N, 5, 2] land on `face_template(size, margin)`.

    `image` is one uint8 CHW image (grayscale is repeated to RGB); returns [N, 3, size, size] uint8. Bilinear
    sampling without anti-aliasing (as cv2.warpAffine in the reference pipelines): detect on images where faces
    are not far larger than `size`, or expect some aliasing."""
    img = _rgb_float(image, "align_faces")
    if landmarks.dim() != 3 or landmarks.shape[1:] != (5, 2):
        raise MMKitError(f"align_faces: landmarks must be [N, 5, 2], got {tuple(landmarks.shape)}")
    n, (h, w) = len(landmarks), img.shape[2:]
    if n == 0:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8, device=image.device)
    m = estimate_similarity(landmarks.to(img.device, torch.float32), face_template(size, margin))
    # affine_grid wants output → input in normalised coordinates (align_corners=False: u_norm = 2u / size − 1).
    fwd = torch.cat([m.double(), m.new_tensor([0.0, 0.0, 1.0]).double().expand(n, 1, 3)], 1)
    to_pixels = torch.tensor([[size / 2, 0, size / 2], [0, size / 2, size / 2], [0, 0, 1]]).to(fwd)
    to_norm = torch.tensor([[2 / w, 0, -1], [0, 2 / h, -1], [0, 0, 1]]).to(fwd)
    theta = (to_norm @ torch.linalg.inv(fwd) @ to_pixels)[:, :2].float()
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    out = F.grid_sample(
        img.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return _to_uint8(out)


def crop_faces(image: Tensor, boxes: Tensor, size: int = 160, margin: float = 32) -> Tensor:
    """Crop boxes [N, 4] (x1, y1, x2, y2) grown by a margin, clipped to the image, resized to size×size.

    facenet-pytorch's convention (`extract_face`): `margin` is in pixels of the *output*, i.e. each box grows by
    margin · w / (size − margin) in width (half on each side) and likewise in height, so the face fills
    size − margin output pixels. The aspect ratio is not preserved. Resizing averages several bilinear samples
    per output pixel (`roi_align`), which anti-aliases downscaling. Returns [N, 3, size, size] uint8."""
    img = _rgb_float(image, "crop_faces")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise MMKitError(f"crop_faces: boxes must be [N, 4], got {tuple(boxes.shape)}")
    if not 0 <= margin < size:
        raise MMKitError(f"crop_faces: margin must be in [0, size={size}), got {margin}")
    if len(boxes) == 0:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8, device=image.device)
    h, w = img.shape[2:]
    b = boxes.to(img.device, torch.float32)
    grow = (b[:, 2:] - b[:, :2]) * (margin / (size - margin) / 2)
    b = torch.cat([b[:, :2] - grow, b[:, 2:] + grow], 1)
    b[:, 0::2] = b[:, 0::2].clamp(0, w)
    b[:, 1::2] = b[:, 1::2].clamp(0, h)
    return _to_uint8(roi_align(img, [b], size, sampling_ratio=-1, aligned=True))
