"""The people pages in a real browser, on both deployments: real photos grouped into people,
who are named in place, hidden, merged and corrected; the image page says who is in it."""

from __future__ import annotations

import io
import re
import secrets
import time

from PIL import Image
from playwright.sync_api import FilePayload, Page, expect

from tests.analysis.face_photos import photo
from tests.live_server import LiveServer
from tests.web.conftest import PageFactory, screenshot
from tests.web.test_browser import ANALYSED, assert_accessible, sign_up

# Long side of the uploads: the faces stay 100 px or more, and analysis stays quick.
SIDE = 720
GROUPED = 60.0  # s: grouping runs after each analysis, on the same queue
PHOTOS = ("obama.jpg", "obama2.jpg", "biden.jpg")


def face_photo(name: str) -> bytes:
    image = Image.open(io.BytesIO(photo(name))).convert("RGB")
    image.thumbnail((SIDE, SIDE))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


def wait_until_grouped(page: Page, server: LiveServer, images: int) -> None:
    """Until the faces of ``images`` images belong to people (asked of the API, with the
    page's session cookie)."""
    deadline = time.monotonic() + GROUPED
    while True:
        response = page.request.get(f"{server.url}/people?include_hidden=true")
        assert response.ok, response.text()
        if sum(person["image_count"] for person in response.json()["data"]) == images:
            return
        assert time.monotonic() < deadline, f"the faces were not grouped: {response.text()}"
        time.sleep(0.1)


def test_people_are_named_hidden_merged_and_corrected(
    live_server: LiveServer, new_page: PageFactory
) -> None:
    server = live_server
    page = new_page()
    sign_up(page, server, f"pat_{secrets.token_hex(4)}")
    page.get_by_label("Drop images here or choose files").set_input_files(
        [FilePayload(name=name, mimeType="image/jpeg", buffer=face_photo(name)) for name in PHOTOS]
    )
    for name in PHOTOS:
        expect(page.locator(".card", has_text=name).locator("[data-role=status]")).to_have_text(
            "analysed", timeout=ANALYSED
        )
    wait_until_grouped(page, server, images=len(PHOTOS))

    # Two people, each with their face; the one in the most images first.
    page.get_by_role("link", name="People").click()
    people = page.locator("#people .person")
    expect(people).to_have_count(2)
    expect(page.locator("#total")).to_have_text("2")
    first, second = (people.nth(n).get_attribute("data-person-id") for n in (0, 1))
    obama = page.locator(f'.person[data-person-id="{first}"]')
    biden = page.locator(f'.person[data-person-id="{second}"]')
    expect(obama.locator(".person-meta")).to_contain_text("2 images")
    expect(biden.locator(".person-meta")).to_contain_text("1 image")
    for person in (obama, biden):
        expect(person.locator("img.face-crop")).to_have_js_property("naturalWidth", 160)

    # Named in place; the name stays.
    obama.get_by_role("textbox", name="Name").fill("Barack Obama")
    obama.get_by_role("button", name="Save").click()
    expect(obama.get_by_role("status")).to_have_text("Saved.")
    page.reload()
    expect(obama.get_by_role("textbox", name="Name")).to_have_value("Barack Obama")
    assert_accessible(page)
    screenshot(page, "people")

    # Hidden: left out of the list, but for "Hidden ones too".
    biden.get_by_role("button", name="Hide").click()
    expect(biden.get_by_text("hidden", exact=True)).to_be_visible()
    page.reload()
    expect(people).to_have_count(1)
    page.get_by_role("link", name="Hidden ones too").click()
    expect(people).to_have_count(2)
    expect(biden.get_by_role("button", name="Unhide")).to_be_visible()

    # A wrong merge: his faces join Barack Obama, and he is gone.
    biden.get_by_role("button", name="Merge…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("radio")).to_have_count(1)  # not into himself
    dialog.get_by_role("radio", name=re.compile("^Barack Obama")).check()
    dialog.get_by_role("button", name="Merge", exact=True).click()
    expect(people).to_have_count(1)
    expect(obama.locator(".person-meta")).to_contain_text("3 images")

    # The person's page lists the three images, each with its face; one is not him.
    obama.get_by_role("link", name="Images of Barack Obama").click()
    expect(page.get_by_role("heading", name="Barack Obama")).to_be_visible()
    person_url = page.url
    cards = page.locator("#images .card")
    expect(cards).to_have_count(3)
    for name in PHOTOS:
        card = cards.filter(has_text=name)
        expect(card.get_by_role("img", name=f"Face in {name}")).to_have_js_property(
            "naturalWidth", 160
        )
    assert_accessible(page)
    wrong = cards.filter(has_text="biden.jpg")
    biden_image = wrong.locator("a.card-link").get_attribute("href")
    wrong.get_by_role("button", name="Not this person").click()
    expect(cards).to_have_count(2)
    expect(page.locator(".person-head .person-meta")).to_contain_text("2 images")
    page.reload()
    expect(cards).to_have_count(2)
    expect(cards.filter(has_text="biden.jpg")).to_have_count(0)

    # The image page says who is in it, on the preview too, and links to them.
    cards.filter(has_text="obama2.jpg").locator("a.card-link").click()
    expect(page.get_by_role("heading", name="obama2.jpg")).to_be_visible()
    expect(page.locator("svg.overlay text.face-label")).to_have_text("Barack Obama")
    page.locator(".image-people").get_by_role("link", name="Barack Obama").click()
    expect(page).to_have_url(person_url)
    page.goto(f"{server.url}{biden_image}")
    expect(page.locator(".image-people")).to_contain_text("taken out of a person")
    expect(page.locator("svg.overlay text.face-label")).to_have_count(0)

    # The gallery's search finds his images by his name.
    page.goto(f"{server.url}/gallery?q=barack")
    expect(page.locator("#grid .card")).to_have_count(2)
    expect(page.locator("#grid .card .snippet").first).to_contain_text("Person")

    # Nobody else sees him, not even by the address of his page.
    other = new_page()
    sign_up(other, server, f"quinn_{secrets.token_hex(4)}")
    other.goto(person_url)
    expect(other.get_by_text("There is no person here")).to_be_visible()
    other.goto(f"{server.url}/gallery/people")
    expect(other.locator("#people .person")).to_have_count(0)
