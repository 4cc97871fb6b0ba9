"""Pushing a GradInit checkpoint to the Hub through an `HfApi` (injectable): network, offline-mode and login
failures become a `HubPushError` that says the local checkpoint is complete and how to push it later."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

from .checkpoint import check_complete

logger = logging.getLogger("hf_gradinit")


def _connection_errors() -> tuple[type[BaseException], ...]:
    """Errors meaning "the Hub cannot be reached": offline mode, sockets, and the HTTP client's transport errors."""
    errors: list[type[BaseException]] = [OfflineModeIsEnabled, ConnectionError, TimeoutError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "ConnectionError")):
        try:
            errors.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):  # the HTTP client huggingface_hub uses depends on its version
            continue
    return tuple(errors)


_CONNECTION_ERRORS = _connection_errors()


class HubPushError(RuntimeError):
    """A push failed (no network, offline mode, not logged in, refused); the local checkpoint is complete."""


def push_checkpoint(
    output_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    api: HfApi | None = None,
) -> str | None:
    """Upload a checkpoint directory written by `save_gradinit_checkpoint` to the Hub model repo `repo_id`.

    `api.create_repo(repo_id, private=..., exist_ok=True, repo_type="model")`, then with `revision` `create_branch`
    (exist_ok), then `upload_folder` of the whole directory as one commit. `api` defaults to `HfApi()` (token from
    `hf auth login` / `HF_TOKEN`); pass one to use another endpoint or token, or a fake in tests. Returns the
    commit URL (None if the API returns none). The local directory is only read.

    Raises `ValueError` if the directory is not a complete checkpoint, and `HubPushError` (from the original error)
    when the Hub cannot be reached (offline mode, no network), refuses (not logged in, no access), or fails.
    """
    from .. import __version__

    folder = Path(output_dir)
    check_complete(folder)
    api = api if api is not None else HfApi()
    message = commit_message or f"Upload GradInit-initialised checkpoint (hf-gradinit {__version__})"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        info = api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), revision=revision, commit_message=message, repo_type="model"
        )
    except OfflineModeIsEnabled as error:
        raise _push_error(folder, repo_id, "offline mode is on (HF_HUB_OFFLINE is set)") from error
    except LocalTokenNotFoundError as error:
        raise _push_error(folder, repo_id, "not logged in (run `hf auth login` or set HF_TOKEN)") from error
    except (*_CONNECTION_ERRORS, HfHubHTTPError) as error:
        raise _push_error(folder, repo_id, f"{type(error).__name__}: {error}") from error
    url = getattr(info, "commit_url", None) or (info if isinstance(info, str) else None)
    logger.info("Pushed %s to %s%s", folder, repo_id, f" ({url})" if url else "")
    return url


def _push_error(folder: Path, repo_id: str, reason: str) -> HubPushError:
    return HubPushError(
        f"Could not push to the Hub repo {repo_id!r}: {reason}. The checkpoint is complete at {folder} and was not "
        f"changed; push it later with `hf-gradinit push {folder} {repo_id}` (or `hf upload {repo_id} {folder}`)."
    )
