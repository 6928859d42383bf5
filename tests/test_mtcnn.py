"""MTCNN with the real facenet-pytorch weights on real photos (scikit-image, CC0), face alignment and crops, and
drawing detections."""

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image

from mmkit.data.face_align import align_faces, crop_faces, estimate_similarity, face_template
from mmkit.errors import MMKitError
from mmkit.models.mtcnn import MTCNN, FaceDetections, load_mtcnn, mtcnn_weights_dir
from mmkit.models.weights import load_state_dict_file
from mmkit.report.faces import draw_faces


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)


@pytest.fixture(scope="module")
def mtcnn() -> MTCNN:
    return load_mtcnn()


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    return _chw(skimage.data.astronaut())


@pytest.fixture(scope="module")
def astronaut_det(mtcnn, astronaut) -> FaceDetections:
    return mtcnn.detect(astronaut)[0]


def test_weights_load_strictly_and_module_is_in_eval_mode(mtcnn):
    folder = mtcnn_weights_dir()
    for name in ("pnet", "rnet", "onet"):
        file_sd = load_state_dict_file(folder / f"{name}.pt")
        net_sd = getattr(mtcnn, name).state_dict()
        assert list(net_sd) == list(file_sd)
        assert all(torch.equal(net_sd[k], file_sd[k]) for k in file_sd)
    assert not mtcnn.training


def test_astronaut_has_one_face_with_plausible_landmarks(astronaut_det):
    det = astronaut_det
    assert len(det) == 1 and det.scores[0] > 0.99
    x1, y1, x2, y2 = det.boxes[0].tolist()
    # Eileen Collins' face: roughly x 180-270, y 60-175 in the 512x512 photo
    assert 165 < x1 < 200 and 250 < x2 < 285 and 40 < y1 < 80 and 150 < y2 < 195
    pts = det.landmarks[0]
    assert det.landmarks.shape == (1, 5, 2)
    assert ((pts[:, 0] > x1) & (pts[:, 0] < x2) & (pts[:, 1] > y1) & (pts[:, 1] < y2)).all()
    left_eye, right_eye, nose, left_mouth, right_mouth = pts
    assert left_eye[0] + 20 < right_eye[0] and left_mouth[0] + 20 < right_mouth[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])


def test_photos_without_faces(mtcnn):
    dets = mtcnn.detect([_chw(skimage.data.coffee()), _chw(skimage.data.rocket())])
    assert [len(d) for d in dets] == [0, 0]
    assert dets[0].boxes.shape == (0, 4) and dets[0].landmarks.shape == (0, 5, 2)


def test_lfw_subset_faces_and_non_faces(mtcnn):
    """200 25x25 grayscale crops (100 faces, then 100 non-faces), upsampled to 100 px. Measured: 97 % / 0 %."""
    lfw = torch.from_numpy(skimage.data.lfw_subset()).float()[:, None]
    x = (F.interpolate(lfw, size=(100, 100), mode="bilinear") * 255).round().clamp(0, 255).to(torch.uint8)
    found = np.array([len(d) > 0 for d in mtcnn.detect(list(x))])
    assert found[:100].mean() >= 0.9
    assert found[100:].mean() <= 0.05


def test_batched_detection_equals_one_by_one_and_input_types(mtcnn, astronaut, astronaut_det):
    small = _chw(skimage.data.astronaut()[::2, ::2])  # 256x256: a 45 px face
    images = [
        astronaut,
        small,
        astronaut.flip(2),  # same size as the first: batched through P-Net together
        torch.from_numpy(skimage.data.camera())[None],  # grayscale
        _chw(skimage.data.coffee()),
    ]
    batched = mtcnn.detect(images)
    single = [mtcnn.detect(im)[0] for im in images]
    assert [len(d) for d in batched] == [1, 1, 1, 1, 0]
    for b, s in zip(batched, single, strict=True):
        assert torch.allclose(b.boxes, s.boxes, atol=1e-2) and torch.allclose(
            b.landmarks, s.landmarks, atol=1e-2
        )
        assert torch.allclose(b.scores, s.scores, atol=1e-4)
    assert torch.allclose(batched[0].boxes, astronaut_det.boxes, atol=1e-2)
    # the flipped photo's box is the mirror image of the original's, up to the detector's pixel jitter
    mirrored = batched[2].boxes[0, [2, 1, 0, 3]]
    mirrored[[0, 2]] = 512 - mirrored[[0, 2]]
    assert (mirrored - batched[0].boxes[0]).abs().max() < 6
    assert torch.allclose(batched[1].boxes * 2, astronaut_det.boxes, atol=10)
    # PIL images and HWC arrays give the same result as CHW tensors
    array = skimage.data.astronaut()
    for other in (Image.fromarray(array), array):
        assert torch.allclose(mtcnn.detect(other)[0].boxes, astronaut_det.boxes, atol=1e-3)


def test_bad_inputs(mtcnn):
    with pytest.raises(MMKitError, match="uint8"):
        mtcnn.detect(torch.rand(3, 64, 64))
    assert mtcnn.detect([]) == []
    assert len(mtcnn.detect(torch.zeros(3, 10, 10, dtype=torch.uint8))[0]) == 0  # smaller than min face


def test_weight_file_errors(tmp_path, monkeypatch):
    folder = mtcnn_weights_dir()
    for name in ("rnet", "onet"):
        (tmp_path / f"{name}.pt").write_bytes((folder / f"{name}.pt").read_bytes())
    (tmp_path / "pnet.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MMKitError, match=r"pnet\.pt"):
        load_mtcnn(tmp_path)
    (tmp_path / "pnet.pt").write_bytes((folder / "rnet.pt").read_bytes())  # a real file, the wrong network
    with pytest.raises(MMKitError, match=r"pnet\.pt: not the MTCNN pnet"):
        load_mtcnn(tmp_path)
    (tmp_path / "pnet.pt").unlink()
    monkeypatch.setenv("MMKIT_MTCNN_DIR", str(tmp_path))
    with pytest.raises(MMKitError, match="lacks pnet.pt"):
        mtcnn_weights_dir()
    (tmp_path / "pnet.pt").write_bytes((folder / "pnet.pt").read_bytes())
    assert mtcnn_weights_dir() == tmp_path
    monkeypatch.delenv("MMKIT_MTCNN_DIR")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    monkeypatch.setattr("mmkit.models.mtcnn.PACKAGED_WEIGHTS", tmp_path / "none")
    with pytest.raises(MMKitError, match="pip download --no-deps facenet-pytorch==2.6.0"):
        mtcnn_weights_dir()


def test_similarity_estimate_recovers_a_known_transform():
    template = face_template(160)
    angle, scale, shift = 0.3, 2.5, torch.tensor([40.0, -7.0])
    rot = torch.tensor([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=torch.float32)
    src = (template @ rot.T) * scale + shift  # template → image; the estimate must invert it
    m = estimate_similarity(src[None], template)[0]
    assert torch.allclose(src @ m[:, :2].T + m[:, 2], template, atol=1e-3)
    assert torch.allclose(m[:, :2], rot.T / scale, atol=1e-4)


def test_align_faces_puts_landmarks_on_the_template(astronaut, astronaut_det):
    out = align_faces(astronaut, astronaut_det.landmarks, size=112)
    assert out.shape == (1, 3, 112, 112) and out.dtype == torch.uint8
    m = estimate_similarity(astronaut_det.landmarks, face_template(112))[0]
    mapped = astronaut_det.landmarks[0] @ m[:, :2].T + m[:, 2]
    # a real face is near the template, not on it (the astronaut smiles: a wider, lower mouth)
    error = (mapped - face_template(112)).norm(dim=1)
    assert error.max() < 8 and error.mean() < 5
    assert out.float().std() > 20  # a real crop, not a blank image
    empty = align_faces(astronaut, torch.zeros(0, 5, 2), size=96)
    assert empty.shape == (0, 3, 96, 96) and empty.dtype == torch.uint8


def test_align_faces_warps_pixels_onto_the_template():
    """Bright dots at rotated, scaled template positions in a grayscale image land on the template after warping."""
    size, margin = 80, 16
    template = face_template(size, margin)
    angle, scale, shift = -0.4, 1.7, torch.tensor([60.0, 30.0])
    rot = torch.tensor([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=torch.float32)
    pixels = ((template @ rot.T) * scale + shift).floor()
    image = torch.zeros(1, 240, 200, dtype=torch.uint8)
    for x, y in pixels.long().tolist():
        image[0, y - 1 : y + 2, x - 1 : x + 2] = 255  # a 3x3 dot centred on pixel (x, y)
    centres = pixels + 0.5  # continuous coordinates of the dot centres
    out = align_faces(image, torch.stack([centres, centres.flip(0)]), size=size, margin=margin)
    assert out.shape == (2, 3, size, size) and (out[:, 0] == out[:, 2]).all()
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    for tx, ty in template.tolist():
        near = ((xx - tx) ** 2 + (yy - ty) ** 2 < 25).float() * out[0, 0].float()
        centroid = torch.stack([(near * xx).sum(), (near * yy).sum()]) / near.sum()
        assert (centroid - torch.tensor([tx, ty])).norm() < 0.25


def test_crop_faces_margin_and_clipping():
    image = torch.zeros(3, 100, 120, dtype=torch.uint8)
    image[2] = 200  # blue background
    image[:, 20:60, 30:70] = torch.tensor([255, 0, 0], dtype=torch.uint8)[:, None, None]  # red 40x40 face
    boxes = torch.tensor([[30.0, 20.0, 70.0, 60.0]])
    tight = crop_faces(image, boxes, size=80, margin=0)
    assert tight.shape == (1, 3, 80, 80)
    # upsampling blends the outermost output pixels with the background, as bilinear resizing does
    assert (tight[0, 0, 1:-1, 1:-1] == 255).all() and (tight[0, 2, 1:-1, 1:-1] == 0).all()
    # margin 16 of 80: the box grows by 40 * 16 / 64 = 10 px, 5 per side = 8 output px of blue on each side
    crop = crop_faces(image, boxes, size=80, margin=16)[0]
    assert (crop[2, :, :7] == 200).all() and (crop[2, :, -7:] == 200).all() and (crop[2, :7] == 200).all()
    assert (crop[0, 9:-9, 9:-9] == 255).all()
    # a box at the image corner: the grown box is clipped to the image, so no black padding appears
    corner = crop_faces(image, torch.tensor([[0.0, 0.0, 40.0, 40.0]]), size=80, margin=16)[0]
    assert (corner.amax(0) > 0).all()
    gray = crop_faces(image[:1], boxes, size=32, margin=0)
    assert gray.shape == (1, 3, 32, 32) and (gray[:, :, 1:-1, 1:-1] == 255).all()
    assert crop_faces(image, torch.zeros(0, 4), size=48).shape == (0, 3, 48, 48)


def test_draw_faces(astronaut, astronaut_det):
    det = astronaut_det
    drawn = draw_faces(astronaut, det.boxes, det.scores, det.landmarks)
    assert isinstance(drawn, Image.Image) and drawn.size == (512, 512) and drawn.mode == "RGB"
    arr = torch.from_numpy(np.array(drawn)).permute(2, 0, 1)
    x1, y1, x2, y2 = det.boxes[0].round().long().tolist()
    changed = (arr != astronaut).any(0)
    assert changed[y1:y2, x1 - 1 : x1 + 2].any(1).all() and changed[y1:y2, x2 - 2 : x2 + 1].any(1).all()
    lx, ly = det.landmarks[0, 0].long().tolist()
    assert changed[ly, lx]  # a landmark dot
    assert not changed[400:, :100].any()  # far from the face nothing changes
    plain = draw_faces(astronaut[:1], torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, 5, 2))
    assert plain.size == (512, 512) and plain.mode == "RGB"
