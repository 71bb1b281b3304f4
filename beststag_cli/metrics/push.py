"""`metrics collect --push`: headline figures as rows of the Airtable metrics table (the spec's dashboard).

Each row has the sample base's fields: Nome, tipo (usage/performance/storage; backup figures go
under storage, as the spec files them), valor, unidade, período (1h/24h/7d/30d), coletado em.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import Settings

if TYPE_CHECKING:
    from ..gateway.api import Gateway


def _pct(v: float | None) -> float | None:
    return None if v is None else round(v * 100, 2)


def _mb(v: float | None) -> float | None:
    return None if v is None else round(v / 1_000_000, 3)


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 2)


Getter = Callable[[dict[str, Any]], float | None]

#: (section, Nome, unidade, how to read the value from the section)
HEADLINES: list[tuple[str, str, str, Getter]] = [
    ("usage", "registros_total", "registros", lambda d: d["records_total"]),
    ("usage", "crescimento_registros", "%", lambda d: d["growth_pct"]),
    ("usage", "usuarios_ativos", "usuários", lambda d: d["users"].get("active_users")),
    ("usage", "interacoes_por_hora", "registros/h", lambda d: d["activity"].get("Interações", {}).get("per_hour")),
    ("performance", "requisicoes", "req", lambda d: d["requests_total"]),
    ("performance", "throughput", "req/h", lambda d: d["throughput_per_hour"]),
    ("performance", "tempo_resposta_medio", "ms", lambda d: _ms(d["response_time_seconds"]["avg"])),
    ("performance", "tempo_resposta_p95", "ms", lambda d: _ms(d["response_time_seconds"]["p95"])),
    ("performance", "taxa_erro", "%", lambda d: _pct(d["error_ratio"])),
    ("performance", "cache_hit_ratio", "%", lambda d: _pct(d["cache"]["hit_ratio"])),
    ("performance", "uso_api", "%", lambda d: _pct(d["api_usage"]["avg_budget_ratio"])),
    ("storage", "uso_armazenamento", "%", lambda d: _pct(d["usage_ratio"])),
    ("storage", "anexos_total", "MB", lambda d: _mb(d["attachment_bytes"])),
    ("storage", "backups_total", "MB", lambda d: _mb(d["backup_bytes"])),
    ("storage", "cache_total", "MB", lambda d: _mb(d["cache_bytes"])),
    ("backup", "backup_taxa_sucesso", "%", lambda d: _pct(d["success_ratio"])),
    ("backup", "tempo_recuperacao_estimado", "s", lambda d: d["recovery"]["estimate_seconds"]),
]


def rows_for(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The Airtable field dicts (one per row) for a collect result; figures with no value are left out."""
    rows = []
    for section, name, unit, get in HEADLINES:
        data = result["metrics"].get(section)
        if data is None:
            continue
        value = get(data)
        if value is None:
            continue
        rows.append(
            {
                "Nome": name,
                "tipo": "storage" if section == "backup" else section,
                "valor": round(float(value), 2),
                "unidade": unit,
                "período": result["range"],
                "coletado em": result["generated_at"],
            }
        )
    return rows


def push(settings: Settings, gateway: Gateway, result: dict[str, Any]) -> list[str]:
    """Create the rows in ``settings.metrics.table``; return the new record ids."""
    rows = rows_for(result)
    if not rows:
        return []
    created = gateway.create(settings.metrics.table, rows, source="push")  # the gateway tells the cache
    return [r["id"] for r in created]
