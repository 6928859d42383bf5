"""The page of `mmkit serve` in real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium):
photos chosen through the file input are sent to the server, and the labels and faces come back drawn."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest
from PIL import Image

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install selenium)"
)
uvicorn = pytest.importorskip("uvicorn")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; make test does)",
)

FACE_RGB = (0x00, 0xE6, 0x76)  # FACE in static/index.html


TOKEN = "page-test-token"


def _serve_in_thread(app):
    """`app` on a free loopback port, served by uvicorn in a thread: (url, stop)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)

    def stop():
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return f"http://127.0.0.1:{port}", stop


def _recorded_server(**config):
    """create_app(ServeConfig(device="cpu", token=TOKEN, **config)) served in a thread: yields (url, app, the
    (path, method, status) of every request it answered)."""
    from mmkit.apps.serve import ServeConfig, create_app

    app = create_app(ServeConfig(device="cpu", token=TOKEN, **config))
    answered = []

    async def recorded(scope, receive, send):
        async def send_(message):
            if message["type"] == "http.response.start":
                answered.append((scope["path"], scope["method"], message["status"]))
            await send(message)

        await app(scope, receive, send_)

    url, stop = _serve_in_thread(recorded)
    yield url, app, answered
    stop()


@pytest.fixture(scope="module")
def server():
    """The app with its default models (ImageNet classifier, MTCNN faces) and an access token."""
    yield from _recorded_server()


@pytest.fixture(scope="module")
def server_without_classifier():
    yield from _recorded_server(classifier=None, detector=None)


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import skimage.data

    d = tmp_path_factory.mktemp("page")
    Image.fromarray(skimage.data.coffee()).save(d / "coffee.jpg", quality=92)
    Image.fromarray(skimage.data.astronaut()).save(d / "astronaut.png")
    (d / "notes.jpg").write_text("not a photo at all\n" * 20)
    return d


def _pixels_near(browser, card_id: str, x: float, y: float, r: int = 4) -> list[list[int]]:
    """RGBA of the (2r+1)² canvas pixels around (x, y), in image pixels."""
    return browser.execute_script(
        """const c = document.querySelector('#' + arguments[0] + ' canvas');
           const d = c.getContext('2d').getImageData(arguments[1], arguments[2], arguments[3], arguments[3]).data;
           const out = []; for (let i = 0; i < d.length; i += 4) out.push([d[i], d[i+1], d[i+2], d[i+3]]);
           return out;""",
        card_id,
        round(x) - r,
        round(y) - r,
        2 * r + 1,
    )


def _wait_for_cards(browser, n: int) -> dict:
    """The page's n cards by file name, once none is pending."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def finished(drv):
        cards = drv.find_elements(By.CSS_SELECTOR, ".card")
        return len(cards) == n and all(c.get_attribute("data-state") != "pending" for c in cards)

    WebDriverWait(browser, 60).until(finished)
    return {c.get_attribute("data-file"): c for c in browser.find_elements(By.CSS_SELECTOR, ".card")}


def test_upload_photos_and_see_labels_and_faces_drawn(server, browser, photos):
    from selenium.webdriver.common.by import By

    url, _, _ = server
    browser.get(
        f"{url}/?token={TOKEN}"
    )  # as `mmkit serve` prints it; the page sends it on with every request
    assert browser.title == "mmkit"
    assert "token" not in browser.current_url  # taken out of the address bar
    browser.execute_async_script("window.mmkitReady.then(arguments[0])")
    assert "classifier" in browser.find_element(By.ID, "models").text
    files = [photos / "coffee.jpg", photos / "astronaut.png", photos / "notes.jpg"]
    browser.find_element(By.ID, "file").send_keys("\n".join(str(p) for p in files))

    cards = _wait_for_cards(browser, 3)
    assert set(cards) == {"coffee.jpg", "astronaut.png", "notes.jpg"}

    # coffee: the label list says espresso, and the top label is drawn on the canvas in its banner colour
    coffee = cards["coffee.jpg"]
    assert coffee.get_attribute("data-state") == "done"
    labels = [li.text for li in coffee.find_elements(By.CSS_SELECTOR, "ul.labels li")]
    assert len(labels) == 5 and labels[0].startswith("espresso ")
    size = browser.execute_script(
        "const c = document.querySelector('#' + arguments[0] + ' canvas'); return [c.width, c.height];",
        coffee.get_attribute("id"),
    )
    assert size == [600, 400]
    banner = _pixels_near(browser, coffee.get_attribute("id"), 2, 10, r=1)  # left of the label's text
    assert all(p[2] > 150 and p[2] > p[0] + 100 and p[2] > p[1] + 80 for p in banner), banner  # blue banner

    # astronaut: one face listed, its box drawn in the face colour where the server found it
    astro = cards["astronaut.png"]
    faces = astro.find_elements(By.CSS_SELECTOR, "ul.faces li")
    assert len(faces) == 1 and faces[0].text.startswith("face 1")
    res = browser.execute_script("return window.mmkitResults[arguments[0]]", astro.get_attribute("id"))
    (face,) = res["faces"]["faces"]
    x1, y1, x2, y2 = face["box"]

    def face_coloured(px):
        return any(all(abs(a - b) < 30 for a, b in zip(p[:3], FACE_RGB, strict=True)) for p in px)

    for x, y in [((x1 + x2) / 2, y1), ((x1 + x2) / 2, y2), (x1, (y1 + y2) / 2), (x2, (y1 + y2) / 2)]:
        assert face_coloured(_pixels_near(browser, astro.get_attribute("id"), x, y)), (x, y)
    inside = _pixels_near(browser, astro.get_attribute("id"), (x1 + x2) / 2, (y1 + y2) / 2 + 20)
    assert not face_coloured(inside)  # the face itself is not painted over
    corner = _pixels_near(browser, astro.get_attribute("id"), 500, 500)
    assert any(sum(p[:3]) > 30 for p in corner) and all(p[3] == 255 for p in corner)  # the photo is drawn

    # a text file named .jpg: the server's refusal is shown on its card
    notes = cards["notes.jpg"]
    assert notes.get_attribute("data-state") == "error"
    errors = " | ".join(e.text for e in notes.find_elements(By.CSS_SELECTOR, ".error"))
    assert "notes.jpg: not an image" in errors and "judged by content" in errors


ATTACKER_PAGE = """<!doctype html><title>cat pictures</title><script>
const form = new FormData();
form.append("file", new Blob([new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10])], {type: "image/png"}), "x.png");
form.append("name", "mallory");
Promise.allSettled([
  fetch(TARGET + "/faces/enroll", {method: "POST", mode: "no-cors", body: form}),
  fetch(TARGET + "/classify?token=TOKEN", {method: "POST", mode: "no-cors", body: form}),
]).then(() => { document.title = "sent"; });
</script>"""


def test_a_page_of_another_origin_cannot_drive_the_server(server, browser):
    """A page from another port (another origin) posts to the server the way a hostile site would (no-cors
    multipart POSTs; even knowing the token): the server refuses both with 403 before any endpoint runs."""
    from selenium.webdriver.support.ui import WebDriverWait
    from starlette.responses import HTMLResponse

    url, _, answered = server
    page = ATTACKER_PAGE.replace("TARGET", repr(url)).replace("TOKEN", TOKEN)

    async def attacker(scope, receive, send):
        await HTMLResponse(page)(scope, receive, send)

    evil_url, stop = _serve_in_thread(attacker)
    try:
        before = len(answered)
        browser.get(evil_url + "/")
        WebDriverWait(browser, 30).until(lambda d: d.title == "sent")
        deadline = time.monotonic() + 10
        while len(answered) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        posts = sorted(a for a in answered[before:] if a[1] == "POST")
        assert posts == [("/classify", "POST", 403), ("/faces/enroll", "POST", 403)], answered[before:]
    finally:
        stop()


def test_the_page_calls_only_the_models_the_server_has(server_without_classifier, browser, photos):
    """Without a classifier the page asks for faces only: no /classify call (it would answer 409), no error."""
    from selenium.webdriver.common.by import By

    url, _, answered = server_without_classifier
    browser.get(f"{url}/?token={TOKEN}")
    browser.execute_async_script("window.mmkitReady.then(arguments[0])")
    assert browser.find_element(By.ID, "models").text.startswith("Models: faces ·")
    browser.find_element(By.ID, "file").send_keys(str(photos / "astronaut.png"))
    astro = _wait_for_cards(browser, 1)["astronaut.png"]
    assert astro.get_attribute("data-state") == "done"
    assert not astro.find_elements(By.CSS_SELECTOR, ".error")
    assert len(astro.find_elements(By.CSS_SELECTOR, "ul.faces li")) == 1
    assert not astro.find_elements(By.CSS_SELECTOR, "ul.labels")
    assert ("/faces/detect", "POST", 200) in answered
    assert [a for a in answered if a[0] == "/classify"] == []


def test_docs_draw_every_operation_offline(server, browser):
    """/docs, opened without the token, draws the API with Swagger UI 5 from this server's own files: FastAPI
    writes OpenAPI 3.1, which Swagger UI 4 only answers with "Unable to render this definition"."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, app, answered = server
    before = len(answered)
    browser.get(f"{url}/docs")
    WebDriverWait(browser, 30).until(
        lambda d: (
            d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path") or "Unable to render" in d.page_source
        )
    )
    assert "Unable to render" not in browser.page_source
    drawn = browser.execute_script(
        """return [...document.querySelectorAll('.opblock-summary')].map(s => [
             s.querySelector('.opblock-summary-method').textContent,
             s.querySelector('.opblock-summary-path').getAttribute('data-path')]);"""
    )
    expected = [[method.upper(), path] for path, ops in app.openapi()["paths"].items() for method in ops]
    assert ["POST", "/classify"] in drawn and sorted(drawn) == sorted(expected), drawn
    assert browser.find_element(By.CSS_SELECTOR, ".info .title").text.startswith("mmkit")
    served = answered[before:]
    assert {p for p, _, _ in served} >= {"/docs", "/openapi.json"} and len(served) >= 4, served
    assert all(status == 200 for _, _, status in served), served  # the assets too, without the token
