"""The web UI in a real browser: what a person does, start to finish, on both deployments."""

from __future__ import annotations

import asyncio
import io
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from axe_playwright_python.sync_playwright import Axe
from PIL import Image, ImageDraw
from playwright.sync_api import FilePayload, Page, expect

from iap.config import Settings
from iap.storage import create_storage
from tests.admin.conftest import run_create_user
from tests.analysis.factories import astronaut, coffee, font
from tests.factories import PASSWORD
from tests.live_server import LiveServer
from tests.web.conftest import PageFactory, screenshot

ANALYSED = 120_000  # ms: two images through every analyser, OCR included, on a busy machine


def portrait() -> bytes:
    """The astronaut (a face) above a white band with a caption (text): both overlays."""
    canvas = Image.new("RGB", (512, 640), "white")
    canvas.paste(astronaut(), (0, 0))
    ImageDraw.Draw(canvas).text((40, 548), "HELLO IAP", font=font(56), fill="black")
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=92)
    return out.getvalue()


PORTRAIT = portrait()


def landscape() -> bytes:
    out = io.BytesIO()
    coffee().save(out, "PNG")
    return out.getvalue()


def sign_up(page: Page, server: LiveServer, username: str) -> None:
    page.goto(f"{server.url}/gallery")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=%2Fgallery$"))
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(f"{server.url}/gallery")
    expect(page.get_by_text(username)).to_be_visible()


def signed_in_admin(server: LiveServer, page: Page, then: str = "/gallery") -> Page:
    """A new admin (made by ``iap create-user --admin``) signed in on ``page``, sent to ``then``."""
    name = f"admin_{secrets.token_hex(4)}"
    arguments = (name, "--email", f"{name}@example.com", "--password", PASSWORD, "--admin")
    # In a thread: the CLI runs its own event loop, and Playwright's is current on this one.
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(run_create_user, server.settings, *arguments).result()
    assert result.exit_code == 0, result.output
    page.goto(f"{server.url}/sign-in?next={then}")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    return page


def test_a_user_uploads_watches_analysis_edits_searches_and_deletes(
    ui_server: LiveServer, new_page: PageFactory
) -> None:
    server = ui_server
    page = new_page()
    alice = f"alice_{secrets.token_hex(4)}"
    sign_up(page, server, alice)
    expect(page.get_by_text("No images yet")).to_be_visible()

    # Two files through the file chooser; the page must not reload while they are analysed.
    page.evaluate("window.sameDocument = true")
    page.get_by_label("Drop images here or choose files").set_input_files(
        [
            FilePayload(name="astronaut.jpg", mimeType="image/jpeg", buffer=PORTRAIT),
            FilePayload(name="coffee.png", mimeType="image/png", buffer=landscape()),
        ]
    )
    cards = page.locator("#grid .card")
    expect(cards).to_have_count(2)
    for name in ("astronaut.jpg", "coffee.png"):
        expect(page.locator(".card", has_text=name).locator("[data-role=status]")).to_have_text(
            "analysed", timeout=ANALYSED
        )
        expect(page.locator(".card", has_text=name).locator("img.photo")).to_be_visible()
    assert page.evaluate("window.sameDocument") is True, "the gallery reloaded"
    expect(page.locator("#total")).to_have_text("2")
    screenshot(page, "gallery")

    # The image page: the face and the caption are outlined over the preview.
    page.locator(".card", has_text="astronaut.jpg").get_by_role("link").click()
    expect(page.get_by_role("heading", name="astronaut.jpg")).to_be_visible()
    faces = page.locator("svg.overlay rect.face")
    lines = page.locator("svg.overlay rect.text-box")
    expect(faces.first).to_be_visible()
    expect(lines.first).to_be_visible()
    assert "HELLO" in (page.locator("pre.ocr").text_content() or "")
    expect(page.locator(".swatches li").first).to_be_visible()
    page.get_by_role("checkbox", name=re.compile(r"^Faces")).uncheck()
    expect(faces.first).to_be_hidden()
    page.get_by_role("checkbox", name=re.compile(r"^Faces")).check()

    # Tags are edited in place and survive a reload.
    page.get_by_role("textbox", name=re.compile(r"^Tags")).fill("Space, portrait")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    page.reload()
    expect(page.get_by_role("textbox", name=re.compile(r"^Tags"))).to_have_value("portrait, space")
    screenshot(page, "image")
    image_url = page.url
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == "astronaut.jpg"
    assert Path(download.value.path()).read_bytes() == PORTRAIT, "the download is not the upload"

    # Search finds it by tag, and only it.
    page.get_by_role("link", name="Gallery").first.click()
    page.get_by_role("searchbox", name="Search").fill("space")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#grid .card")).to_have_count(1)
    expect(page.locator("#grid .card")).to_contain_text("astronaut.jpg")
    # And by the text read in it, the words highlighted in a snippet of where they are.
    page.get_by_role("searchbox", name="Search").fill("hello")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("heading", name="Images matching")).to_be_visible()
    card = page.locator("#grid .card")
    expect(card).to_have_count(1)
    expect(card.locator(".snippet")).to_contain_text("Text in the image")
    expect(card.locator(".snippet mark")).to_have_text("HELLO")
    screenshot(page, "search")
    page.get_by_role("searchbox", name="Search").fill('"IAP hello"')
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("No image has these words")).to_be_visible()

    # A second user sees none of it, not even by its address.
    other = new_page()
    sign_up(other, server, f"bob_{secrets.token_hex(4)}")
    expect(other.locator("#grid .card")).to_have_count(0)
    other.goto(image_url)
    expect(other.get_by_text("There is no image here")).to_be_visible()
    image_id = image_url.rsplit("/", 1)[1]
    assert other.request.get(f"{server.url}/image/{image_id}").status == 403
    assert other.request.get(f"{server.url}/image/{image_id}/thumbnail").status == 403

    # Delete asks first; keeping it changes nothing, confirming removes it.
    page.goto(image_url)
    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("button", name="Keep it").click()
    expect(page.get_by_role("heading", name="astronaut.jpg")).to_be_visible()
    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page).to_have_url(f"{server.url}/gallery")
    expect(page.locator("#grid .card")).to_have_count(1)
    expect(page.locator("#grid .card")).to_contain_text("coffee.png")
    assert page.request.get(f"{server.url}/image/{image_id}").status == 404


def test_a_bad_file_gets_its_own_error_and_the_good_one_still_uploads(
    ui_server: LiveServer, new_page: PageFactory
) -> None:
    page = new_page()
    sign_up(page, ui_server, f"carol_{secrets.token_hex(4)}")
    page.get_by_label("Drop images here or choose files").set_input_files(
        [
            FilePayload(name="notes.jpg", mimeType="image/jpeg", buffer=b"not an image at all"),
            FilePayload(name="coffee.png", mimeType="image/png", buffer=landscape()),
        ]
    )
    failed = page.locator(".upload-row.failed")
    expect(failed).to_contain_text("notes.jpg")
    expect(failed.get_by_role("alert")).to_contain_text("not an image")
    expect(page.locator("#grid .card")).to_have_count(1)
    expect(page.locator("#grid .card")).to_contain_text("coffee.png")


def test_account_page_makes_an_api_key_that_works(
    ui_server: LiveServer, new_page: PageFactory
) -> None:
    page = new_page()
    sign_up(page, ui_server, f"dave_{secrets.token_hex(4)}")
    page.get_by_role("link", name="Account").click()
    page.get_by_label("Name", exact=True).fill("backup script")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key-value")).to_have_text(re.compile(r"^iap_"))
    key = page.locator("#new-key-value").text_content() or ""
    expect(page.locator("#keys tbody tr", has_text="backup script")).to_be_visible()
    screenshot(page, "account")
    me = httpx.get(f"{ui_server.url}/me", headers={"X-API-Key": key})
    assert me.status_code == 200
    assert me.json()["username"].startswith("dave_")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete key backup script").click()
    expect(page.locator("#keys tbody tr", has_text="backup script")).to_have_count(0)
    assert httpx.get(f"{ui_server.url}/me", headers={"X-API-Key": key}).status_code == 401


def test_admin_page_shows_figures_and_disables_a_user(
    ui_server: LiveServer, new_page: PageFactory
) -> None:
    victim = new_page()
    victim_name = f"erin_{secrets.token_hex(4)}"
    sign_up(victim, ui_server, victim_name)

    page = signed_in_admin(ui_server, new_page())
    expect(page).to_have_url(f"{ui_server.url}/gallery")
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Administration")).to_be_visible()
    expect(page.locator(".stats")).to_contain_text("users")
    page.get_by_role("searchbox", name="Find").fill(victim_name.upper())
    page.get_by_role("button", name="Search").click()
    expect(page.locator("table.users tbody tr")).to_have_count(1)
    page.get_by_role("button", name=f"Disable {victim_name}").click()
    expect(page.get_by_role("button", name=f"Enable {victim_name}")).to_be_visible()
    screenshot(page, "admin")

    # The disabled user's open page is signed out at its next request.
    victim.reload()
    expect(victim).to_have_url(re.compile(r"/sign-in"))


def test_pages_work_on_a_phone(ui_server: LiveServer, new_page: PageFactory) -> None:
    page = new_page(width=390, height=844)
    sign_up(page, ui_server, f"frank_{secrets.token_hex(4)}")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the gallery scrolls sideways on a phone ({width} px wide)"
    expect(page.get_by_label("Drop images here or choose files")).to_be_attached()
    screenshot(page, "gallery-phone")


def test_signing_in_works_from_the_keyboard_alone(
    ui_server: LiveServer, new_page: PageFactory
) -> None:
    page = new_page()
    username = f"gina_{secrets.token_hex(4)}"
    sign_up(page, ui_server, username)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{ui_server.url}/sign-in")

    expect(page.get_by_label("Username")).to_be_focused()  # the form is ready to type into
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{ui_server.url}/gallery")
    expect(page.get_by_text(username)).to_be_visible()

    page.keyboard.press("Tab")  # the first stop skips the navigation
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()


def assert_accessible(page: Page) -> None:
    """axe-core (the engine browsers' accessibility audits use) finds no violation (WCAG 2 A and
    AA rules, contrast included) in the page as it stands."""
    rules = {"runOnly": ["wcag2a", "wcag2aa", "wcag21aa", "best-practice"]}
    results = Axe().run(page, options=rules)
    assert results.violations_count == 0, f"{page.url}\n{results.generate_report()}"


def test_every_page_passes_an_accessibility_audit(
    ui_server: LiveServer, new_page: PageFactory
) -> None:
    page = new_page()
    page.goto(f"{ui_server.url}/sign-in")
    assert_accessible(page)
    page.goto(f"{ui_server.url}/sign-up")
    assert_accessible(page)
    sign_up(page, ui_server, f"hana_{secrets.token_hex(4)}")
    assert_accessible(page)  # the empty gallery
    page.get_by_label("Drop images here or choose files").set_input_files(
        [FilePayload(name="coffee.png", mimeType="image/png", buffer=landscape())]
    )
    status = page.locator(".card [data-role=status]")
    expect(status).to_have_text("analysed", timeout=ANALYSED)
    assert_accessible(page)  # cards, upload rows
    page.goto(f"{ui_server.url}/gallery?q=coffee")
    expect(page.locator(".card .snippet mark")).to_have_text("coffee")
    assert_accessible(page)  # a search, its snippets highlighted
    page.locator(".card").get_by_role("link").click()
    expect(page.get_by_role("heading", name="coffee.png")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("link", name="Account").click()
    assert_accessible(page)
    page.get_by_role("link", name="Duplicates").click()
    assert_accessible(page)


def test_files_dropped_on_the_page_are_uploaded(
    ui_server: LiveServer, new_page: PageFactory
) -> None:
    page = new_page()
    sign_up(page, ui_server, f"ivan_{secrets.token_hex(4)}")
    dropped = page.evaluate_handle(
        """bytes => {
            const transfer = new DataTransfer();
            const file = new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"});
            transfer.items.add(file);
            return transfer;
        }""",
        list(landscape()),
    )
    page.dispatch_event("#dropzone", "dragenter", {"dataTransfer": dropped})
    expect(page.locator("#dropzone")).to_have_class(re.compile(r"\bover\b"))
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": dropped})
    expect(page.locator("#grid .card")).to_contain_text("dropped.png")
    expect(page.locator(".card [data-role=status]")).to_have_text("analysed", timeout=ANALYSED)


def test_a_password_change_signs_the_browser_out(
    ui_server: LiveServer, new_page: PageFactory
) -> None:
    page = new_page()
    username = f"judy_{secrets.token_hex(4)}"
    sign_up(page, ui_server, username)
    page.get_by_role("link", name="Account").click()
    page.get_by_label("Current password").fill("not my password")
    page.get_by_label("New password").fill("a much better password")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("The current password is not correct.")).to_be_visible()

    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(re.compile(r"/sign-in$"), timeout=10_000)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Incorrect username or password")
    page.get_by_label("Password").fill("a much better password")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{ui_server.url}/gallery")


def put_original(settings: Settings, image_id: str, data: bytes) -> None:
    """Overwrite a stored original behind iap's back (in a thread with its own event loop)."""

    async def put() -> None:
        storage = create_storage(settings)
        try:
            await storage.put(f"originals/{image_id}", io.BytesIO(data), "image/png")
        finally:
            await storage.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, put()).result()


def test_a_failed_analysis_shows_its_error_and_an_admin_retries_it(
    ui_server: LiveServer, new_page: PageFactory
) -> None:
    owner = new_page()
    sign_up(owner, ui_server, f"kim_{secrets.token_hex(4)}")
    original = landscape()
    owner.get_by_label("Drop images here or choose files").set_input_files(
        [FilePayload(name="fragile.png", mimeType="image/png", buffer=original)]
    )
    expect(owner.locator(".card [data-role=status]")).to_have_text("analysed", timeout=ANALYSED)
    owner.locator(".card").get_by_role("link").click()
    image_id = owner.url.rsplit("/", 1)[1]

    put_original(ui_server.settings, image_id, b"\x89PNG\r\n\x1a\n no longer an image")
    owner.get_by_role("button", name="Analyse again").click()
    # Live: the page learns of the failure from /events and shows the error.
    expect(owner.get_by_role("alert").filter(has_text="could not be decoded")).to_be_visible(
        timeout=ANALYSED
    )
    expect(owner.locator(".image-head [data-role=status]")).to_have_text("failed")

    admin = signed_in_admin(ui_server, new_page(), then="/admin")
    row = admin.locator("table.failed tr", has_text=image_id)
    expect(row).to_contain_text("fragile.png")
    expect(row).to_contain_text("could not be decoded")

    put_original(ui_server.settings, image_id, original)  # the cause is fixed
    row.get_by_role("button", name="Retry").click()
    expect(row).to_have_count(0)
    expect(owner.locator(".image-head [data-role=status]")).to_have_text(
        "analysed", timeout=ANALYSED
    )


def test_the_image_page_shows_its_look_alikes_and_not_the_others(
    ui_server: LiveServer, new_page: PageFactory
) -> None:
    page = new_page()
    sign_up(page, ui_server, f"lookalike_{secrets.token_hex(4)}")
    smaller = io.BytesIO()
    Image.open(io.BytesIO(PORTRAIT)).resize((256, 320)).save(smaller, "JPEG", quality=40)
    page.get_by_label("Drop images here or choose files").set_input_files(
        [
            FilePayload(name="astronaut.jpg", mimeType="image/jpeg", buffer=PORTRAIT),
            FilePayload(name="small.jpg", mimeType="image/jpeg", buffer=smaller.getvalue()),
            FilePayload(name="coffee.png", mimeType="image/png", buffer=landscape()),
        ]
    )
    for name in ("astronaut.jpg", "small.jpg", "coffee.png"):
        expect(page.locator(".card", has_text=name).locator("[data-role=status]")).to_have_text(
            "analysed", timeout=ANALYSED
        )
    page.locator(".card", has_text="astronaut.jpg").get_by_role("link").click()
    strip = page.get_by_role("list", name="Images that look like this one, nearest first")
    expect(strip.locator(".card")).to_have_count(1)
    expect(strip.locator(".card")).to_contain_text("small.jpg")
    strip.get_by_role("link").click()
    expect(page.get_by_role("heading", name="small.jpg")).to_be_visible()
    page.get_by_role("link", name="Gallery").first.click()
    page.locator(".card", has_text="coffee.png").get_by_role("link").click()
    expect(page.get_by_role("heading", name="coffee.png")).to_be_visible()
    expect(page.get_by_role("heading", name="Looks like")).to_have_count(0)


def test_the_duplicates_page_keeps_one_of_each_group_in_one_action(
    ui_server: LiveServer, new_page: PageFactory
) -> None:
    page = new_page()
    sign_up(page, ui_server, f"dup_{secrets.token_hex(4)}")
    coffee_png = landscape()
    page.get_by_label("Drop images here or choose files").set_input_files(
        [
            FilePayload(name="first.png", mimeType="image/png", buffer=coffee_png),
            FilePayload(name="second.png", mimeType="image/png", buffer=coffee_png),
            FilePayload(name="third.png", mimeType="image/png", buffer=coffee_png),
            FilePayload(name="astronaut.jpg", mimeType="image/jpeg", buffer=PORTRAIT),
        ]
    )
    for name in ("first.png", "second.png", "third.png", "astronaut.jpg"):
        expect(page.locator(".card", has_text=name).locator("[data-role=status]")).to_have_text(
            "analysed", timeout=ANALYSED
        )
    page.get_by_role("link", name="Duplicates").click()
    groups = page.locator(".duplicate-group")
    expect(groups).to_have_count(1)
    expect(groups.locator(".card")).to_have_count(3)
    expect(groups).not_to_contain_text("astronaut.jpg")
    keep = groups.locator(".card").first.get_attribute("data-image-id")
    assert_accessible(page)
    screenshot(page, "duplicates")
    groups.get_by_role("button", name="Keep this one, delete 2 others").click()
    expect(page.get_by_text("Kept one, deleted 2.")).to_be_visible()
    expect(groups).to_have_count(0)
    page.get_by_role("link", name="Look alike").click()
    expect(page.get_by_text("No duplicates that look alike.")).to_be_visible()
    page.get_by_role("link", name="Gallery").first.click()
    expect(page.locator("#grid .card")).to_have_count(2)
    expect(page.locator(f'#grid .card[data-image-id="{keep}"]')).to_be_visible()
