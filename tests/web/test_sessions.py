"""Browser sign-ins over HTTP: the session cookie, its CSRF protection and how it ends.

These use the shared test client; its cookie jar is emptied around each test so that no other
test ever runs signed in by accident.
"""

from __future__ import annotations

import html
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient

from tests.auth.helpers import assert_error
from tests.factories import PASSWORD, Account, image_bytes

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture
def web(client: TestClient) -> Iterator[TestClient]:
    client.cookies.clear()
    yield client
    client.cookies.clear()


@dataclass
class Browser:
    """What a browser holds after signing in: its cookies and the page's CSRF token."""

    username: str
    session: str
    csrf: str

    @property
    def cookies(self) -> dict[str, str]:
        return {"iap_session": self.session, "iap_csrf": self.csrf}

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}


def page_token(client: TestClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    found = CSRF_META.search(response.text)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def sign_up(client: TestClient) -> Browser:
    """Sign up through the form, as a browser does; return its cookies, then forget them."""
    username = f"web_{secrets.token_hex(5)}"
    token = page_token(client, "/sign-up")
    response = client.post(
        "/sign-up",
        data={
            "username": username,
            "email": f"{username}@example.com",
            "password": PASSWORD,
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/gallery"
    browser = Browser(username, client.cookies["iap_session"], client.cookies["iap_csrf"])
    client.cookies.clear()
    return browser


def signed_in(client: TestClient, cookies: Browser | dict[str, str]) -> TestClient:
    """The client holding exactly these cookies (a browser's, or forged ones)."""
    client.cookies.clear()
    client.cookies.update(cookies.cookies if isinstance(cookies, Browser) else cookies)
    return client


def upload_as(client: TestClient, browser: Browser, **headers: str) -> httpx.Response:
    return signed_in(client, browser).post(
        "/image/upload",
        headers=headers,
        files={"file": ("photo.jpg", image_bytes(), "image/jpeg")},
    )


def test_browsers_get_the_ui_and_api_clients_the_service_info(web: TestClient) -> None:
    navigation = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = web.get("/", headers={"Accept": navigation}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/gallery"
    for accept in ("application/json", "*/*", "", "text/html;q=0.5, application/json"):
        info = web.get("/", headers={"Accept": accept})
        assert info.status_code == 200, accept
        assert info.json()["name"] == "iap"


@pytest.mark.parametrize(
    "path",
    [
        "/gallery",
        "/account",
        "/admin",
        f"/gallery/{uuid.uuid4()}",
        "/gallery/people",
        f"/gallery/people/{uuid.uuid4()}",
    ],
)
def test_pages_send_strangers_to_sign_in_and_back(web: TestClient, path: str) -> None:
    response = web.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=" + path.replace("/", "%2F")


def test_sign_up_sets_a_http_only_same_site_session_cookie(web: TestClient) -> None:
    token = page_token(web, "/sign-up")
    username = f"web_{secrets.token_hex(5)}"
    response = web.post(
        "/sign-up",
        data={"username": username, "email": f"{username}@example.com", "password": PASSWORD}
        | {"csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookies = {c.split("=", 1)[0]: c.lower() for c in response.headers.get_list("set-cookie")}
    assert "httponly" in cookies["iap_session"]
    assert "samesite=lax" in cookies["iap_session"]
    assert "httponly" in cookies["iap_csrf"]
    assert "samesite=strict" in cookies["iap_csrf"]
    gallery = web.get("/gallery")
    assert gallery.status_code == 200
    assert username in gallery.text


def test_sign_up_form_errors_are_shown_on_the_form(web: TestClient) -> None:
    token = page_token(web, "/sign-up")
    response = web.post(
        "/sign-up",
        data={"username": "x", "email": "nope", "password": "short", "csrf_token": token},
    )
    assert response.status_code == 422
    assert "3–32 letters" in response.text
    assert "email address such as" in response.text
    assert "at least 8 characters" in response.text
    assert "iap_session" not in web.cookies


def test_sign_in_with_a_wrong_password_is_401_on_the_form(web: TestClient) -> None:
    browser = sign_up(web)
    token = page_token(web, "/sign-in")
    response = web.post(
        "/sign-in",
        data={"username": browser.username, "password": "wrong password", "csrf_token": token},
    )
    assert response.status_code == 401
    assert "Incorrect username or password" in response.text
    assert "iap_session" not in web.cookies


def test_sign_in_follows_next_only_to_this_site(web: TestClient) -> None:
    browser = sign_up(web)
    for target, expected in [
        ("/account", "/account"),
        ("//evil.example/", "/gallery"),
        ("https://evil.example/", "/gallery"),
        ("/\\evil.example", "/gallery"),
        ("/\t/evil.example", "/gallery"),
        ("/\n/evil.example", "/gallery"),
    ]:
        web.cookies.clear()
        token = page_token(web, "/sign-in")
        response = web.post(
            "/sign-in",
            data={"username": browser.username, "password": PASSWORD, "csrf_token": token}
            | {"next": target},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert response.headers["location"] == expected, target


def test_sign_in_without_the_forms_csrf_token_is_refused(web: TestClient) -> None:
    browser = sign_up(web)
    page_token(web, "/sign-in")  # the browser holds a CSRF cookie...
    forged = web.post(  # ...but another site's form cannot know the token
        "/sign-in", data={"username": browser.username, "password": PASSWORD}
    )
    assert forged.status_code == 403
    assert "CSRF" in forged.text
    assert "iap_session" not in web.cookies


def test_the_api_accepts_the_cookie_for_reading(web: TestClient) -> None:
    browser = sign_up(web)
    me = signed_in(web, browser).get("/me")
    assert me.status_code == 200
    assert me.json()["username"] == browser.username


def test_changes_with_the_cookie_need_the_csrf_token(web: TestClient) -> None:
    browser = sign_up(web)
    refused = upload_as(web, browser)
    assert_error(refused, 403, "csrf_failed")
    wrong = upload_as(web, browser, **{"X-CSRF-Token": browser.csrf[:-4] + "0000"})
    assert_error(wrong, 403, "csrf_failed")
    listing = signed_in(web, browser).get("/image/all").json()
    assert listing["total"] == 0, "a refused upload stored something"

    created = upload_as(web, browser, **browser.headers)
    assert created.status_code == 201, created.text
    image_id = created.json()["id"]
    edit = {"tags": ["forged"]}
    assert_error(signed_in(web, browser).put(f"/image/{image_id}", json=edit), 403, "csrf_failed")
    assert_error(signed_in(web, browser).delete(f"/image/{image_id}"), 403, "csrf_failed")
    kept = signed_in(web, browser).get(f"/image/{image_id}").json()
    assert kept["tags"] == []
    edited = signed_in(web, browser).put(f"/image/{image_id}", json=edit, headers=browser.headers)
    assert edited.status_code == 200
    assert edited.json()["tags"] == ["forged"]


def test_a_cross_site_request_is_refused_even_with_a_token(web: TestClient) -> None:
    browser = sign_up(web)
    response = upload_as(web, browser, **browser.headers, **{"Sec-Fetch-Site": "cross-site"})
    assert_error(response, 403, "csrf_failed")


def test_a_csrf_token_of_another_sign_in_is_refused(web: TestClient) -> None:
    alice, mallory = sign_up(web), sign_up(web)
    # Mallory plants her own (valid) token pair in Alice's browser: it is bound to her sign-in.
    cookies = {"iap_session": alice.session, "iap_csrf": mallory.csrf}
    response = signed_in(web, cookies).post(
        "/me/api-keys", json={"name": "x"}, headers=mallory.headers
    )
    assert_error(response, 403, "csrf_failed")


def test_bearer_tokens_need_no_csrf_token(web: TestClient, alice: Account) -> None:
    assert web.get("/me", headers=alice.headers).status_code == 200
    assert web.post("/me/api-keys", json={"name": "k"}, headers=alice.headers).status_code == 201


def test_sign_out_ends_the_session_on_the_server(web: TestClient) -> None:
    browser = sign_up(web)
    web.cookies.update(browser.cookies)
    response = web.post("/sign-out", data={"csrf_token": browser.csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in"
    web.cookies.clear()
    # A copy of the cookie taken before signing out is worthless after it.
    assert_error(signed_in(web, browser).get("/me"), 401, "invalid_token")
    page = signed_in(web, browser).get("/gallery", follow_redirects=False)
    assert page.status_code == 303


def test_sign_out_without_the_token_is_refused(web: TestClient) -> None:
    browser = sign_up(web)
    web.cookies.update(browser.cookies)
    response = web.post("/sign-out", data={}, follow_redirects=False)
    assert response.status_code == 403
    web.cookies.clear()
    assert signed_in(web, browser).get("/me").status_code == 200


def test_a_new_password_ends_browser_sign_ins(web: TestClient) -> None:
    browser = sign_up(web)
    changed = signed_in(web, browser).patch(
        "/me",
        json={"current_password": PASSWORD, "password": "a brand new password"},
        headers=browser.headers,
    )
    assert changed.status_code == 200, changed.text
    assert_error(signed_in(web, browser).get("/me"), 401, "invalid_token")


def test_forged_session_cookies_are_refused(web: TestClient) -> None:
    browser = sign_up(web)
    claims = jwt.decode(browser.session, options={"verify_signature": False})
    unsigned = jwt.encode(claims, key="", algorithm="none")
    other_key = jwt.encode(claims, key="not the server's key" * 3, algorithm="HS256")
    as_access = jwt.encode(claims | {"typ": "access"}, key="x" * 64, algorithm="HS256")
    for forged in (unsigned, other_key, as_access, "garbage"):
        cookies = {"iap_session": forged, "iap_csrf": browser.csrf}
        assert signed_in(web, cookies).get("/me").status_code == 401
        page = signed_in(web, cookies).get("/gallery", follow_redirects=False)
        assert page.status_code == 303


def test_pages_are_not_cached_and_run_only_their_own_scripts(web: TestClient) -> None:
    browser = sign_up(web)
    for path in ("/gallery", "/account", "/sign-in"):
        response = signed_in(web, browser).get(path)
        assert response.headers["cache-control"] == "no-store"
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy


def test_someone_elses_image_is_not_found_on_every_page(web: TestClient) -> None:
    owner, other = sign_up(web), sign_up(web)
    created = upload_as(web, owner, **owner.headers)
    image_id = created.json()["id"]
    page = signed_in(web, other.cookies).get(f"/gallery/{image_id}")
    assert page.status_code == 404
    assert "There is no image here" in page.text
    assert signed_in(web, other.cookies).get(f"/gallery/card/{image_id}").status_code == 404
    assert image_id not in signed_in(web, other.cookies).get("/gallery").text
    mine = signed_in(web, owner.cookies).get(f"/gallery/{image_id}")
    assert mine.status_code == 200
    assert "photo.jpg" in mine.text


def test_an_unknown_person_is_not_found_and_a_new_account_has_none(web: TestClient) -> None:
    browser = sign_up(web)
    page = signed_in(web, browser).get(f"/gallery/people/{uuid.uuid4()}")
    assert page.status_code == 404
    assert "There is no person here" in page.text
    people = signed_in(web, browser).get("/gallery/people?hidden=yes&page=-1")
    assert people.status_code == 200
    assert "No people to show" in people.text


def test_gallery_filters_take_nonsense_calmly(web: TestClient) -> None:
    browser = sign_up(web)
    response = signed_in(web, browser).get(
        "/gallery?after=yesterday&status=done&page=-3&before=2026-13-01"
    )
    assert response.status_code == 200
    assert "is not a date" in response.text
    assert "is not an analysis status" in response.text


def test_the_gallery_pages_through_cards(web: TestClient) -> None:
    browser = sign_up(web)
    for _ in range(25):
        assert upload_as(web, browser, **browser.headers).status_code == 201
    first = signed_in(web, browser).get("/gallery").text
    assert first.count('class="card"') == 24
    assert 'href="/gallery?page=2"' in first
    assert 'data-more="/gallery/cards?page=2"' in first
    rest = signed_in(web, browser).get("/gallery/cards?page=2").text
    assert rest.count('class="card"') == 1
    assert "data-more" not in rest


def test_the_gallery_pages_through_a_search_by_cursor(web: TestClient) -> None:
    browser = sign_up(web)
    for _ in range(25):
        assert upload_as(web, browser, **browser.headers).status_code == 201
    first = signed_in(web, browser).get("/gallery?q=photo").text
    assert first.count('class="card"') == 24
    assert first.count("<mark>photo</mark>") == 24
    more = re.search(r'data-more="(/gallery/cards\?q=photo&amp;cursor=[^"]+)"', first)
    assert more is not None, first
    rest = signed_in(web, browser).get(html.unescape(more.group(1))).text
    assert rest.count('class="card"') == 1
    assert "data-more" not in rest
    ids = set(re.findall(r'data-image-id="([^"]+)"', first + rest))
    assert len(ids) == 25


def test_a_search_with_no_words_or_a_stale_cursor_is_said_so(web: TestClient) -> None:
    browser = sign_up(web)
    assert upload_as(web, browser, **browser.headers).status_code == 201
    nothing = signed_in(web, browser).get('/gallery?q="*"')
    assert nothing.status_code == 200
    assert "no words to look for" in nothing.text
    assert nothing.text.count('class="card"') == 1  # every image instead
    stale = signed_in(web, browser).get("/gallery?q=photo&cursor=abc")
    assert stale.status_code == 200
    assert "That page of the search is gone" in stale.text
    assert stale.text.count('class="card"') == 1
    none = signed_in(web, browser).get("/gallery?q=lighthouse")
    assert "No image has these words" in none.text
