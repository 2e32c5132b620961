"""Which providers exist, from the environment, and building one by name.

Built-in providers (an empty variable counts as unset):

    name        API key                     base URL (default)                      model
    openai      OPENAI_API_KEY              OPENAI_BASE_URL (api.openai.com/v1)     OPENAI_MODEL
    openrouter  OPENROUTER_API_KEY          OPENROUTER_BASE_URL (openrouter.ai/api/v1)
                                                                                    OPENROUTER_MODEL
    claude      ANTHROPIC_API_KEY, or the   ANTHROPIC_BASE_URL (api.anthropic.com)  CLAUDE_MODEL,
                legacy CLAUDE_API_KEY                                               ANTHROPIC_MODEL
    lm_studio   LM_STUDIO_API_KEY (opt.)    LM_STUDIO_URL (http://localhost:1234/v1)
                                                                                    LM_STUDIO_MODEL
    ollama      OLLAMA_API_KEY (opt.)       OLLAMA_URL (http://localhost:11434/v1)  OLLAMA_MODEL

Names are matched case-insensitively with "-" or " " read as "_", and the names stored
by earlier releases resolve: `openrouter`, `claude` (also `anthropic`), `lm_studio`
(also `lmstudio`, "LM Studio").

Custom OpenAI-compatible endpoints (vLLM, Together, a second LM Studio...):

    GRADING_APP_CUSTOM_PROVIDERS="vllm=http://gpu:8000/v1, together=https://api.together.xyz/v1"

each with an optional key in `<NAME>_API_KEY` (VLLM_API_KEY) and default model in
`<NAME>_MODEL`.

Rate limits per (provider, model), requests per minute and concurrent calls:

    GRADING_APP_RATE_LIMITS="openrouter=60/8, openrouter:openai/gpt-4o=20/2, ollama=-/1"

`provider=RPM/CONCURRENCY` sets the default for each of that provider's models (every
model gets its own budget); `provider:model=...` overrides it for one model (the model
is everything after the first ":", so `ollama:llama3:8b=-/1` works). `-` or nothing
means no limit on that side; `60` alone is 60 per minute and no concurrency limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, NamedTuple

from grading_app.errors import BadRequest
from grading_app.providers.base import Provider

if TYPE_CHECKING:
    from grading_app.providers.anthropic_provider import AnthropicProvider
    from grading_app.providers.openai_compat import OpenAICompatProvider

Kind = Literal["openai", "anthropic"]

CUSTOM_PROVIDERS_ENV = "GRADING_APP_CUSTOM_PROVIDERS"
RATE_LIMITS_ENV = "GRADING_APP_RATE_LIMITS"

ALIASES = {
    "anthropic": "claude",
    "lmstudio": "lm_studio",
    "open_router": "openrouter",
}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class UnknownProvider(BadRequest):
    pass


class ProviderNotConfigured(BadRequest):
    """The provider exists but lacks what it needs (an API key)."""


class ProviderConfigError(BadRequest):
    """A provider environment variable cannot be understood."""


class RateLimits(NamedTuple):
    rpm: int | None
    concurrency: int | None


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    kind: Kind
    base_url: str
    api_key: str | None = None
    default_model: str | None = None
    rpm: int | None = None
    concurrency: int | None = None
    model_limits: Mapping[str, RateLimits] = field(default_factory=dict)
    label: str = ""  # how people know it: "OpenRouter"
    key_env: str | None = None  # the variable the key is (or would be) read from
    requires_key: bool = False
    # Set up on purpose (a key, an address or a custom entry in the environment) rather
    # than merely known with its defaults; `providers check` checks these.
    configured: bool = False
    unreachable_hint: str | None = None
    key_check_path: str | None = None
    # The vendor sells the same calls at half price through a batch API
    # (providers/batch_api.py): OpenAI's own endpoint and Claude.
    batch_api: bool = False

    def __repr__(self) -> str:
        # Written by hand so the key never reaches a log line, a traceback or a test
        # report through repr(); only whether there is one shows.
        return (
            f"ProviderConfig(name={self.name!r}, kind={self.kind!r}, "
            f"base_url={self.base_url!r}, api_key={self.masked_key!r}, "
            f"default_model={self.default_model!r}, rpm={self.rpm!r}, "
            f"concurrency={self.concurrency!r})"
        )

    __str__ = __repr__

    @property
    def has_key(self) -> bool:
        return bool(self.api_key)

    @property
    def masked_key(self) -> str | None:
        return "***" if self.api_key else None

    def limits_for(self, model: str) -> RateLimits:
        return self.model_limits.get(model, RateLimits(self.rpm, self.concurrency))


class ProviderConfigs(Mapping[str, ProviderConfig]):
    """Configs by canonical name; looking up an alias or legacy spelling finds the same
    config, so names stored in old databases resolve wherever they are used."""

    def __init__(self, configs: Mapping[str, ProviderConfig]) -> None:
        self._configs = dict(configs)

    def __getitem__(self, name: str) -> ProviderConfig:
        return self._configs[canonical_name(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._configs)

    def __len__(self) -> int:
        return len(self._configs)

    def __repr__(self) -> str:
        return f"ProviderConfigs({list(self._configs.values())!r})"


def canonical_name(name: str) -> str:
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    return ALIASES.get(key, key)


@dataclass(frozen=True)
class _Builtin:
    name: str
    kind: Kind
    label: str
    key_envs: tuple[str, ...]  # the first one is the one to recommend
    url_env: str
    default_url: str
    model_envs: tuple[str, ...]
    default_model: str | None
    requires_key: bool
    unreachable_hint: str | None = None
    key_check_path: str | None = None
    batch_api: bool = False


def _openai_compatible(
    name: str,
    *,
    label: str,
    env_prefix: str,
    url_env: str,
    default_url: str,
    requires_key: bool,
    default_model: str | None = None,
    unreachable_hint: str | None = None,
    key_check_path: str | None = None,
    batch_api: bool = False,
) -> _Builtin:
    """An OpenAI-compatible endpoint, its key in `<PREFIX>_API_KEY` and its default
    model in `<PREFIX>_MODEL`."""
    return _Builtin(
        name=name,
        kind="openai",
        label=label,
        key_envs=(f"{env_prefix}_API_KEY",),
        url_env=url_env,
        default_url=default_url,
        model_envs=(f"{env_prefix}_MODEL",),
        default_model=default_model,
        requires_key=requires_key,
        unreachable_hint=unreachable_hint,
        key_check_path=key_check_path,
        batch_api=batch_api,
    )


_BUILTINS = (
    _openai_compatible(
        "openai",
        label="OpenAI",
        env_prefix="OPENAI",
        url_env="OPENAI_BASE_URL",
        default_url="https://api.openai.com/v1",
        requires_key=True,
        default_model="gpt-4o-mini",
        batch_api=True,
    ),
    _openai_compatible(
        "openrouter",
        label="OpenRouter",
        env_prefix="OPENROUTER",
        url_env="OPENROUTER_BASE_URL",
        default_url="https://openrouter.ai/api/v1",
        requires_key=True,
        default_model="openai/gpt-4o-mini",
        # OpenRouter's model list is public; GET /key is what proves a key
        # (https://openrouter.ai/docs/api-reference/api-keys/get-current-key).
        key_check_path="/key",
    ),
    _Builtin(
        name="claude",
        kind="anthropic",
        label="Anthropic",
        key_envs=("ANTHROPIC_API_KEY", "CLAUDE_API_KEY"),
        url_env="ANTHROPIC_BASE_URL",
        default_url="https://api.anthropic.com",
        model_envs=("CLAUDE_MODEL", "ANTHROPIC_MODEL"),
        default_model="claude-sonnet-5-5",
        requires_key=True,
        batch_api=True,
    ),
    _openai_compatible(
        "lm_studio",
        label="LM Studio",
        env_prefix="LM_STUDIO",
        url_env="LM_STUDIO_URL",
        default_url="http://localhost:1234/v1",
        requires_key=False,
        unreachable_hint="is LM Studio running with its local server started?",
    ),
    _openai_compatible(
        "ollama",
        label="Ollama",
        env_prefix="OLLAMA",
        url_env="OLLAMA_URL",
        default_url="http://localhost:11434/v1",
        requires_key=False,
        unreachable_hint="is Ollama running (`ollama serve`)?",
    ),
)


def load_provider_configs(environ: Mapping[str, str] | None = None) -> ProviderConfigs:
    """Every known provider (built-in and custom), configured or not."""
    if environ is None:
        import os

        environ = os.environ

    def env(name: str) -> str | None:
        value = environ.get(name, "").strip()
        return value or None  # an empty variable means unset, as in most shells' habits

    configs: dict[str, ProviderConfig] = {}
    for spec in _BUILTINS:
        key_env, api_key = next(
            ((n, env(n)) for n in spec.key_envs if env(n)), (spec.key_envs[0], None)
        )
        url = env(spec.url_env)
        configs[spec.name] = ProviderConfig(
            name=spec.name,
            kind=spec.kind,
            base_url=(url or spec.default_url).rstrip("/"),
            api_key=api_key,
            default_model=next((env(n) for n in spec.model_envs if env(n)), spec.default_model),
            label=spec.label,
            key_env=key_env,
            requires_key=spec.requires_key,
            configured=bool(api_key) or (not spec.requires_key and url is not None),
            unreachable_hint=spec.unreachable_hint,
            key_check_path=spec.key_check_path,
            batch_api=spec.batch_api,
        )
    for name, url in _parse_custom(env(CUSTOM_PROVIDERS_ENV)):
        if name in configs:
            raise ProviderConfigError(
                f"{CUSTOM_PROVIDERS_ENV}: '{name}' is a built-in provider; choose another name"
            )
        prefix = name.upper()
        configs[name] = ProviderConfig(
            name=name,
            kind="openai",
            base_url=url.rstrip("/"),
            api_key=env(f"{prefix}_API_KEY"),
            default_model=env(f"{prefix}_MODEL"),
            label=name,
            key_env=f"{prefix}_API_KEY",
            requires_key=False,  # self-hosted servers often need none; a 401 says which
            configured=True,
        )
    return ProviderConfigs(_with_limits(configs, env(RATE_LIMITS_ENV)))


def _parse_custom(value: str | None) -> list[tuple[str, str]]:
    entries = []
    for entry in re.split(r"[,;\s]+", value or ""):
        if not entry:
            continue
        name, sep, url = entry.partition("=")
        name = canonical_name(name)
        if not sep or not _NAME.match(name) or not re.match(r"^https?://", url):
            raise ProviderConfigError(
                f"{CUSTOM_PROVIDERS_ENV}: cannot read '{entry}'; expected "
                "name=http(s)://host/v1, separated by commas"
            )
        entries.append((name, url))
    return entries


def _with_limits(
    configs: dict[str, ProviderConfig], value: str | None
) -> dict[str, ProviderConfig]:
    defaults: dict[str, RateLimits] = {}
    per_model: dict[str, dict[str, RateLimits]] = {}
    for entry in (e.strip() for e in (value or "").split(",")):
        if not entry:
            continue
        target, sep, numbers = entry.rpartition("=")
        provider, _, model = target.partition(":")
        name = canonical_name(provider)
        if not sep or not name:
            raise ProviderConfigError(
                f"{RATE_LIMITS_ENV}: cannot read '{entry}'; expected "
                "provider[:model]=RPM/CONCURRENCY, e.g. openrouter=60/8"
            )
        if name not in configs:
            raise ProviderConfigError(
                f"{RATE_LIMITS_ENV}: unknown provider '{provider}' in '{entry}'; known: "
                f"{', '.join(configs)}"
            )
        limits = _parse_limits(numbers, entry)
        if model:
            per_model.setdefault(name, {})[model] = limits
        else:
            defaults[name] = limits
    out = {}
    for name, config in configs.items():
        default = defaults.get(name, RateLimits(config.rpm, config.concurrency))
        out[name] = replace(
            config,
            rpm=default.rpm,
            concurrency=default.concurrency,
            model_limits=per_model.get(name, {}),
        )
    return out


def _parse_limits(text: str, entry: str) -> RateLimits:
    rpm_text, _, concurrency_text = text.partition("/")

    def number(part: str) -> int | None:
        part = part.strip()
        if part in ("", "-"):
            return None
        if not part.isdigit() or int(part) < 1:
            raise ProviderConfigError(
                f"{RATE_LIMITS_ENV}: '{entry}' needs positive whole numbers or '-' "
                "(e.g. 60/8, 60, -/2)"
            )
        return int(part)

    return RateLimits(number(rpm_text), number(concurrency_text))


def get_provider(name: str, configs: Mapping[str, ProviderConfig] | None = None) -> Provider:
    """A new provider client for `name`; build it once and share it across threads."""
    return build_provider(resolve_config(name, configs))


def resolve_config(
    name: str, configs: Mapping[str, ProviderConfig] | None = None
) -> ProviderConfig:
    configs = configs if configs is not None else load_provider_configs()
    config = configs.get(canonical_name(name))
    if config is None:
        raise UnknownProvider(
            f"unknown provider '{name}'; available: {', '.join(sorted(configs)) or 'none'}"
        )
    return config


def require_key(config: ProviderConfig) -> None:
    """Refuse a provider that needs an API key and has none, saying which to set."""
    if config.requires_key and not config.api_key:
        raise ProviderNotConfigured(
            f"{config.label or config.name} has no API key: set {_key_advice(config)}"
        )


def build_provider(config: ProviderConfig) -> OpenAICompatProvider | AnthropicProvider:
    require_key(config)
    # The SDKs are imported here, when a provider is first built: importing them takes
    # seconds, which every CLI start (`--help` included) and the upgrade would pay.
    if config.kind == "anthropic":
        from grading_app.providers.anthropic_provider import AnthropicProvider

        return AnthropicProvider(
            name=config.name,
            base_url=config.base_url,
            api_key=config.api_key,
            label=config.label,
            key_env=config.key_env,
            unreachable_hint=config.unreachable_hint,
        )
    from grading_app.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(
        name=config.name,
        base_url=config.base_url,
        api_key=config.api_key,
        label=config.label,
        key_env=config.key_env,
        unreachable_hint=config.unreachable_hint,
        key_check_path=config.key_check_path,
        batch_api=config.batch_api,
    )


def _key_advice(config: ProviderConfig) -> str:
    if config.name == "claude":
        return "ANTHROPIC_API_KEY (or the legacy CLAUDE_API_KEY)"
    return config.key_env or f"{config.name.upper()}_API_KEY"
