"""People: the faces found in an owner's images, grouped into the people they show."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from iap.analysis.analysers.faces import thumbnail_name
from iap.analysis.service import derivative_key
from iap.auth.deps import SIGNED_IN, SIGNED_IN_CHANGES, CurrentUser
from iap.deps import AppServices, DbSession
from iap.errors import AppError, error_responses
from iap.finding import words
from iap.finding.errors import InvalidQuery
from iap.images.errors import OWNED_IMAGE
from iap.images.schemas import MAX_PAGE, ImageOut
from iap.images.service import get_owned_image
from iap.people import service
from iap.people.errors import OWNED_FACE, OWNED_PERSON, FaceThumbnailMissing, MergeIntoItself
from iap.people.models import Face
from iap.people.schemas import (
    FaceBox,
    FaceOut,
    ImageFaceOut,
    MergeIn,
    PeoplePage,
    PersonImageOut,
    PersonImagesPage,
    PersonOut,
    PersonRef,
    PersonUpdate,
)
from iap.storage import BlobNotFound, StorageUnavailable
from iap.text import NO_CONTROL_PATTERN

router = APIRouter(tags=["people"])

Page = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page number, starting at 1.")]


def _person_out(view: service.PersonView) -> PersonOut:
    person = view.person
    return PersonOut(
        id=person.id,
        name=person.name,
        hidden=person.hidden,
        face_count=view.faces,
        image_count=view.images,
        cover_face_id=view.cover.id if view.cover else None,
        thumbnail_url=f"/people/{person.id}/thumbnail",
        created_at=person.created_at,
        updated_at=person.updated_at,
    )


def _face_out(face: Face) -> dict[str, Any]:
    return {
        "id": face.id,
        "image_id": face.image_id,
        "box": FaceBox(x=face.x, y=face.y, width=face.width, height=face.height),
        "confidence": face.confidence,
        "thumbnail_url": f"/faces/{face.id}/thumbnail",
    }


@router.get(
    "/people", response_model=PeoplePage, responses=error_responses(*SIGNED_IN, InvalidQuery)
)
async def list_people(
    user: CurrentUser,
    session: DbSession,
    skip: Page = 1,
    limit: Annotated[int, Query(ge=1, le=200, description="People per page.")] = 50,
    include_hidden: Annotated[
        bool, Query(description="List hidden people too (they are left out by default).")
    ] = False,
    name: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=NO_CONTROL_PATTERN,
            description="Only people whose name holds these words (`ada*` for words that "
            "begin so; case and accents do not matter).",
            examples=["ada", "lov*"],
        ),
    ] = None,
) -> PeoplePage:
    """Your people: the faces found in your images, grouped by who they are (after each
    analysis, in the background), those in the most images first. Each has a face thumbnail
    and, once you give one, a name."""
    query = None
    if name is not None:
        try:
            query = words.parse(name)
        except words.QueryError as exc:
            raise InvalidQuery(str(exc)) from None
    total, views = await service.list_people(
        session, user, page=skip, limit=limit, include_hidden=include_hidden, name=query
    )
    return PeoplePage(total=total, skip=skip, limit=limit, data=[_person_out(v) for v in views])


@router.get(
    "/people/{person_id}",
    response_model=PersonOut,
    responses=error_responses(*SIGNED_IN, *OWNED_PERSON),
)
async def get_person(person_id: uuid.UUID, user: CurrentUser, session: DbSession) -> PersonOut:
    """One of your people."""
    person = await service.get_owned_person(session, user, person_id)
    return _person_out(await service.view_person(session, person))


@router.patch(
    "/people/{person_id}",
    response_model=PersonOut,
    responses=error_responses(*SIGNED_IN_CHANGES, *OWNED_PERSON),
)
async def update_person(
    person_id: uuid.UUID, changes: PersonUpdate, user: CurrentUser, session: DbSession
) -> PersonOut:
    """Name a person (`null` forgets the name), or hide one from the people list. Names are
    searched: `GET /image/search?q=<name>` finds the person's images."""
    person = await service.get_owned_person(session, user, person_id)
    person = await service.update_person(
        session, user, person, changes.model_dump(exclude_unset=True)
    )
    return _person_out(await service.view_person(session, person))


@router.post(
    "/people/{person_id}/merge",
    response_model=PersonOut,
    responses=error_responses(*SIGNED_IN_CHANGES, *OWNED_PERSON, MergeIntoItself),
)
async def merge_person(
    person_id: uuid.UUID, body: MergeIn, user: CurrentUser, session: DbSession
) -> PersonOut:
    """Two people who are one: this person's faces join the person `into`, and this person
    is gone (its id answers 404 from then on). The person who stays keeps its name, or takes
    this one's if it has none. Answers the person who stays."""
    person = await service.get_owned_person(session, user, person_id)
    into = await service.merge_people(session, user, person, body.into)
    return _person_out(await service.view_person(session, into))


@router.delete(
    "/people/{person_id}/faces/{face_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*SIGNED_IN_CHANGES, *OWNED_PERSON, *OWNED_FACE),
)
async def remove_face(
    person_id: uuid.UUID, face_id: uuid.UUID, user: CurrentUser, session: DbSession
) -> Response:
    """Take a wrongly grouped face out of a person. The face then belongs to nobody, and later
    grouping leaves it so; a person whose last face this was is gone."""
    person = await service.get_owned_person(session, user, person_id)
    await service.remove_face(session, user, person, face_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/people/{person_id}/images",
    response_model=PersonImagesPage,
    responses=error_responses(*SIGNED_IN, *OWNED_PERSON),
)
async def person_images(
    person_id: uuid.UUID,
    user: CurrentUser,
    session: DbSession,
    skip: Page = 1,
    limit: Annotated[int, Query(ge=1, le=100, description="Images per page.")] = 20,
) -> PersonImagesPage:
    """The images a person is in, newest upload first, each with the person's faces in it."""
    person = await service.get_owned_person(session, user, person_id)
    total, found = await service.person_images(session, person, page=skip, limit=limit)
    return PersonImagesPage(
        total=total,
        skip=skip,
        limit=limit,
        data=[
            PersonImageOut(
                image=ImageOut.model_validate(item.image),
                faces=[FaceOut(**_face_out(face)) for face in item.faces],
            )
            for item in found
        ],
    )


@router.get(
    "/image/{image_id}/faces",
    response_model=list[ImageFaceOut],
    responses=error_responses(*SIGNED_IN, *OWNED_IMAGE),
)
async def image_faces(
    image_id: uuid.UUID, user: CurrentUser, session: DbSession
) -> list[ImageFaceOut]:
    """Who is in an image: its faces (those the faces analyser embedded), each with its
    person. Empty until the image is analysed."""
    image = await get_owned_image(session, user, image_id)
    return [
        ImageFaceOut(
            **_face_out(item.face),
            person=PersonRef(id=item.person.id, name=item.person.name, hidden=item.person.hidden)
            if item.person
            else None,
        )
        for item in await service.image_faces(session, image)
    ]


def _thumbnail_route(*owned: type[AppError]) -> dict[str, Any]:
    """A thumbnail route's responses: the WebP, or the errors of its owner check and more."""
    return {
        "response_class": Response,
        "responses": {
            200: {
                "content": {"image/webp": {"schema": {"type": "string", "format": "binary"}}},
                "description": "The face, aligned, with a margin (WebP, 160 px square).",
            },
            **error_responses(*SIGNED_IN, *owned, FaceThumbnailMissing, StorageUnavailable),
        },
    }


async def _face_thumbnail(request: Request, services: AppServices, face: Face) -> Response:
    """The face's thumbnail. Browsers ask again each time (``no-cache``) and get a 304 while
    it is the same face at the same place: a person's cover changes with a merge or a face
    taken out, and analysing the image again rewrites the files."""
    etag = f'"{face.id}-{face.position}-{face.width}x{face.height}"'
    headers = {"Cache-Control": "private, no-cache", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    key = derivative_key(face.image_id, thumbnail_name(face.position))
    try:
        data = await services.storage.read_all(key)
    except BlobNotFound:
        raise FaceThumbnailMissing() from None
    headers["Content-Length"] = str(len(data))
    body = b"" if request.method == "HEAD" else data
    return Response(body, media_type="image/webp", headers=headers)


_PERSON_THUMBNAIL = _thumbnail_route(*OWNED_PERSON)


@router.get("/people/{person_id}/thumbnail", **_PERSON_THUMBNAIL)
@router.head("/people/{person_id}/thumbnail", **_PERSON_THUMBNAIL)
async def person_thumbnail(
    person_id: uuid.UUID,
    request: Request,
    user: CurrentUser,
    session: DbSession,
    services: AppServices,
) -> Response:
    """The person's face: its cover face's thumbnail."""
    person = await service.get_owned_person(session, user, person_id)
    view = await service.view_person(session, person)
    if view.cover is None:
        raise FaceThumbnailMissing()
    return await _face_thumbnail(request, services, view.cover)


_FACE_THUMBNAIL = _thumbnail_route(*OWNED_FACE)


@router.get("/faces/{face_id}/thumbnail", **_FACE_THUMBNAIL)
@router.head("/faces/{face_id}/thumbnail", **_FACE_THUMBNAIL)
async def face_thumbnail(
    face_id: uuid.UUID,
    request: Request,
    user: CurrentUser,
    session: DbSession,
    services: AppServices,
) -> Response:
    """One face's thumbnail."""
    face = await service.get_owned_face(session, user, face_id)
    return await _face_thumbnail(request, services, face)
