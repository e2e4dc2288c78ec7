"""Hub ids: fetch config, tokenizer and only the weight shard(s) holding the embeddings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..errors import LoadError

__all__ = ["download_embedding_files"]

log = logging.getLogger(__name__)

_SMALL = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "model.safetensors.index.json",
    "generation_config.json",
]


def download_embedding_files(repo_id: str, revision: str | None = None) -> Path:
    """Download the small files of ``repo_id`` plus the safetensors shard(s) that hold the
    embedding tensors (found through the index and the config skeleton). Returns the local folder."""
    try:
        from huggingface_hub import HfApi, hf_hub_download, snapshot_download
        from huggingface_hub.utils import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - transformers depends on it
        raise LoadError(f"huggingface_hub is needed for hub ids ({exc})") from None
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=_SMALL))
        index = folder / "model.safetensors.index.json"
        if index.exists():
            from ..errors import first_line
            from .hf_names import config_errors, match_key, skeleton_names

            try:
                weight_map = json.loads(index.read_text("utf-8"))["weight_map"]
                shards = set(weight_map.values())
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise LoadError(f"{index}: unreadable index ({exc.__class__.__name__}: {first_line(exc)})") from None
            wanted = set()
            why: list[str] = []
            try:
                from transformers import AutoConfig

                cfg = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
            except config_errors() as exc:
                why.append(f"config.json: {exc.__class__.__name__}: {first_line(exc)}")
            else:
                for n in skeleton_names(cfg, why)[:2]:
                    key = match_key(n, list(weight_map)) if n else None
                    if key:
                        wanted.add(weight_map[key])
            if not wanted:
                log.warning(
                    "%s: the shard holding the embedding is not known (%s): downloading all %d shards",
                    repo_id,
                    "; ".join(why) or "no skeleton parameter matches the index",
                    len(shards),
                )
            for shard in sorted(wanted or shards):
                hf_hub_download(repo_id, shard, revision=revision)
        else:
            files = HfApi().list_repo_files(repo_id, revision=revision)
            st = [f for f in files if f.endswith(".safetensors") and "/" not in f]
            if not st:
                raise LoadError(f"{repo_id}: the repository has no top-level safetensors weights")
            snapshot_download(repo_id, revision=revision, allow_patterns=st)
        return folder
    except LoadError:
        raise
    except LocalEntryNotFoundError:
        raise LoadError(
            f"{repo_id}: not in the local Hugging Face cache and the hub cannot be reached (offline?)"
        ) from None
    except HfHubHTTPError as exc:
        raise LoadError(f"{repo_id}: hub error: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise LoadError(
            f"{repo_id}: cannot download ({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
