"""The save/load that this package's sentence-transformers modules share: a JSON config plus torch weights."""

from __future__ import annotations

from typing import Any

try:
    from typing import Self
except ImportError:  # pragma: no cover - Python < 3.11
    from typing_extensions import Self

from sentence_transformers.base.modules import Module


class ConfigModule(Module):
    """A :class:`Module` rebuilt from the ``config_keys`` of its saved config, then given its saved weights."""

    config_keys: list[str] = []

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> Self:
        hub_kwargs = {
            "subfolder": subfolder,
            "token": token,
            "cache_folder": cache_folder,
            "revision": revision,
            "local_files_only": local_files_only,
        }
        config = cls.load_config(model_name_or_path=model_name_or_path, **hub_kwargs)
        module = cls(**{key: value for key, value in config.items() if key in cls.config_keys})
        return cls.load_torch_weights(model_name_or_path=model_name_or_path, model=module, **hub_kwargs)
