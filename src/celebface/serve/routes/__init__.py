"""The HTTP routes, one :class:`fastapi.APIRouter` per part: :mod:`.inference` (name, find
and embed faces, verify), :mod:`.gallery` (people and photos), :mod:`.system` (health,
metrics, the page, the docs); the videos' are :mod:`celebface.serve.videos`. Each route gets
the service through ``Depends`` (:func:`celebface.serve.deps.get_service`)."""
