from __future__ import annotations

from iap.errors import AppError, Forbidden, NotFound


class PersonNotFound(NotFound):
    code = "person_not_found"
    detail = "No person has that id (people come and go as faces are grouped: see GET /people)."


class NotPersonOwner(Forbidden):
    code = "not_person_owner"
    detail = "This person belongs to another user."


class FaceNotFound(NotFound):
    code = "face_not_found"
    detail = "No face has that id."


class NotFaceOwner(Forbidden):
    code = "not_face_owner"
    detail = "This face belongs to another user."


class MergeIntoItself(AppError):
    status = 422
    code = "merge_into_itself"
    detail = "A person cannot be merged into itself: give another person's id as `into`."


class FaceThumbnailMissing(NotFound):
    code = "face_thumbnail_missing"
    detail = (
        "This face's thumbnail is not stored (its image may be being analysed again): ask "
        "again in a moment."
    )


# What every person route may answer, for error_responses.
OWNED_PERSON = (PersonNotFound, NotPersonOwner)
OWNED_FACE = (FaceNotFound, NotFaceOwner)
