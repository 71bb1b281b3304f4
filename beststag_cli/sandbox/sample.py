"""The sample BestStag base served by the sandbox: its schema and deterministic synthetic records.

Pure data generation: no storage, no I/O. `sample_schema()` returns the base spec (tables, fields,
views) and `generate_sample()` returns the records, table by table, in creation order. The same
`(seed, scale, now)` always gives the same output, so tests and demos can rely on exact values.

Conventions the storage layer relies on:

- Records refer to each other by `SampleRecord.key` ("Usuários:0001"), never by record id; the
  storage assigns ids and translates link values.
- Every link is declared once, on the table that holds the foreign side (Interações.user,
  Tarefas.responsável, ...); the storage creates the inverse field named by `inverseField` on the
  linked table (here always Usuários) and fills it from the declared side.
- `fields` holds writable fields only, in Airtable's write format; blanks are omitted, as Airtable
  omits them on read (a false checkbox is absent too).
- Times are whole milliseconds in UTC. Creation and modification times, and every "past" field
  (Interações.timestamp, Usuários.último acesso, Logs do Sistema.timestamp, Métricas.coletado em)
  lie in [now - 60 days, now]. Fields that look ahead (Tarefas.vencimento, Eventos.início/fim,
  Memória Contextual.expira em) may lie up to 90 days after `now`.
- Some values are tricky on purpose (apostrophes, quotes, backslashes, braces, emojis, newlines)
  so that the emulator's formula escaping and JSON handling get exercised.
"""

from __future__ import annotations

import copy
import random
import struct
import unicodedata
import zlib
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from beststag_cli import clock

SAMPLE_BASE_ID = "appBestStagSandbx"
SAMPLE_BASE_NAME = "BestStag"

WINDOW_DAYS = 60
"""Every record is created within this many days before `now`."""

BASE_COUNTS: dict[str, int] = {
    "Usuários": 100,
    "Interações": 1000,
    "Tarefas": 300,
    "Eventos": 200,
    "Memória Contextual": 200,
    "Logs do Sistema": 150,
    "Métricas": 50,
}
"""Records per table at scale 1 (2,000 in total); other scales multiply these, at least 1 each."""

LOCAL_TZ_NAME = "America/Sao_Paulo"

_SECOND = 1000
_HOUR = 3600 * _SECOND
_DAY = 24 * _HOUR
_WINDOW = WINDOW_DAYS * _DAY
# Brazil has had no daylight saving time since 2019, so São Paulo is a fixed UTC-3; a fixed offset
# keeps the generator free of tz database lookups.
_LOCAL_OFFSET = -3 * _HOUR
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Relative activity by local hour (America/Sao_Paulo): people write to the assistant in daytime.
_HOUR_WEIGHTS = [1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 3, 6, 8, 9, 9, 7, 7, 8, 8, 8, 7, 6, 6, 5, 4, 3, 2]
_HOUR_CUM = list(accumulate(_HOUR_WEIGHTS))


@dataclass(frozen=True)
class SampleAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class SampleRecord:
    key: str
    created_time: datetime
    modified_time: datetime
    fields: dict[str, Any]


@dataclass
class SampleData:
    schema: dict
    tables: dict[str, list[SampleRecord]]


# --------------------------------------------------------------------------------------------------
# Schema


def _f(name: str, type_: str, description: str | None = None, **options: Any) -> dict[str, Any]:
    field: dict[str, Any] = {"name": name, "type": type_}
    if description:
        field["description"] = description
    if options:
        field["options"] = options
    return field


def _choices(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "color": color} for name, color in pairs]


_DATE = {"name": "iso", "format": "YYYY-MM-DD"}
_TIME = {"name": "24hour", "format": "HH:mm"}


def _date(name: str, description: str | None = None) -> dict[str, Any]:
    return _f(name, "date", description, dateFormat=dict(_DATE))


def _datetime(name: str, description: str | None = None) -> dict[str, Any]:
    return _f(name, "dateTime", description, dateFormat=dict(_DATE), timeFormat=dict(_TIME), timeZone=LOCAL_TZ_NAME)


def _link(name: str, inverse: str, single: bool, description: str | None = None) -> dict[str, Any]:
    return _f(
        name,
        "multipleRecordLinks",
        description,
        linkedTable="Usuários",
        inverseField=inverse,
        prefersSingleRecordLink=single,
    )


def _checkbox(name: str, description: str | None = None) -> dict[str, Any]:
    return _f(name, "checkbox", description, icon="check", color="greenBright")


PLANS = {"Free": 0.0, "Pro": 29.9, "Enterprise": 199.0}

_USER_STATUS = _choices(("Ativo", "greenLight2"), ("Inativo", "grayLight2"))
_PLAN_CHOICES = _choices(("Free", "grayLight2"), ("Pro", "blueLight2"), ("Enterprise", "purpleLight2"))
_USER_TAGS = _choices(
    ("beta", "cyanLight2"),
    ("vip", "yellowLight2"),
    ("early adopter", "tealLight2"),
    ("suporte prioritário", "orangeLight2"),
    ("indicação", "pinkLight2"),
)
_CHANNELS = _choices(
    ("WhatsApp", "greenLight2"), ("Email", "blueLight2"), ("Web", "purpleLight2"), ("Telegram", "cyanLight2")
)
_SENTIMENTS = _choices(("Positivo", "greenLight2"), ("Neutro", "grayLight2"), ("Negativo", "redLight2"))
_TASK_STATUS = _choices(
    ("A fazer", "grayLight2"), ("Em andamento", "blueLight2"), ("Concluída", "greenLight2"), ("Cancelada", "redLight2")
)
_PRIORITIES = _choices(
    ("Baixa", "grayLight2"), ("Média", "yellowLight2"), ("Alta", "orangeLight2"), ("Urgente", "redLight2")
)
_TASK_TAGS = _choices(
    ("trabalho", "blueLight2"),
    ("pessoal", "greenLight2"),
    ("financeiro", "yellowLight2"),
    ("saúde", "redLight2"),
    ("estudos", "purpleLight2"),
    ("casa", "orangeLight2"),
)
_EVENT_TYPES = _choices(
    ("Reunião", "blueLight2"),
    ("Consulta", "redLight2"),
    ("Lembrete", "yellowLight2"),
    ("Aniversário", "pinkLight2"),
    ("Viagem", "tealLight2"),
    ("Outro", "grayLight2"),
)
_MEMORY_CATEGORIES = _choices(
    ("Preferência", "blueLight2"),
    ("Fato pessoal", "greenLight2"),
    ("Contexto de trabalho", "purpleLight2"),
    ("Histórico", "grayLight2"),
    ("Lembrete", "yellowLight2"),
)
_LOG_LEVELS = _choices(
    ("DEBUG", "grayLight2"), ("INFO", "blueLight2"), ("WARN", "yellowLight2"), ("ERROR", "redLight2")
)
_COMPONENTS = _choices(
    ("cache", "cyanLight2"),
    ("query", "blueLight2"),
    ("backup", "purpleLight2"),
    ("metrics", "tealLight2"),
    ("webhook", "orangeLight2"),
    ("whatsapp", "greenLight2"),
    ("scheduler", "grayLight2"),
)
_METRIC_TYPES = _choices(("usage", "blueLight2"), ("performance", "orangeLight2"), ("storage", "purpleLight2"))
_PERIODS = _choices(("1h", "cyanLight2"), ("24h", "blueLight2"), ("7d", "purpleLight2"), ("30d", "grayLight2"))


def _grid(name: str, filter_: str | None = None, sort: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {"name": name, "type": "grid"}
    if filter_:
        view["filter"] = filter_
    if sort:
        view["sort"] = [{"field": field, "direction": direction} for field, direction in sort]
    return view


_SCHEMA: dict[str, Any] = {
    "name": SAMPLE_BASE_NAME,
    "tables": [
        {
            "name": "Usuários",
            "description": "Pessoas que usam o assistente BestStag.",
            "fields": [
                _f("Nome", "singleLineText", "Nome completo do usuário"),
                _f("email", "email"),
                _f("telefone", "phoneNumber", "Número do WhatsApp, formato +55 DD 9XXXX-XXXX"),
                _f("plano", "singleSelect", choices=_PLAN_CHOICES),
                _f("mensalidade", "currency", "Valor mensal do plano", precision=2, symbol="R$"),
                _f("status", "singleSelect", choices=_USER_STATUS),
                _date("data de cadastro"),
                _datetime("último acesso", "Última interação com o assistente"),
                _checkbox("ativo no WhatsApp"),
                _f("avatar", "multipleAttachments", isReversed=False),
                _f("tags", "multipleSelects", choices=_USER_TAGS),
                _f("Criado em", "createdTime"),
                _f("Modificado em", "lastModifiedTime"),
                _f("ID", "autoNumber"),
            ],
            "views": [
                _grid("Grid view"),
                _grid("Ativos", "{status} = 'Ativo'", [("Nome", "asc")]),
                _grid("Pagantes", "OR({plano} = 'Pro', {plano} = 'Enterprise')", [("plano", "asc"), ("Nome", "asc")]),
                _grid("Recentes", sort=[("Criado em", "desc")]),
            ],
        },
        {
            "name": "Interações",
            "description": "Mensagens trocadas entre usuários e o assistente.",
            "fields": [
                _f("Resumo", "singleLineText", "Resumo curto da interação"),
                _link("user", "Interações", True, "Usuário que enviou a mensagem"),
                _f("message", "multilineText", "Mensagem recebida"),
                _datetime("timestamp", "Momento em que a mensagem chegou"),
                _f("canal", "singleSelect", choices=_CHANNELS),
                _f("sentimento", "singleSelect", choices=_SENTIMENTS),
                _f("tokens", "number", "Tokens consumidos pela resposta", precision=0),
                _f("duração (s)", "number", "Tempo de resposta do assistente", precision=2),
                _checkbox("resolvido"),
                _f("Criado em", "createdTime"),
            ],
            "views": [
                _grid("Grid view"),
                _grid("Recentes", sort=[("timestamp", "desc")]),
                _grid("Últimos 7 dias", "IS_AFTER({timestamp}, DATEADD(TODAY(), -7, 'days'))", [("timestamp", "desc")]),
                _grid("WhatsApp pendentes", "AND({canal} = 'WhatsApp', NOT({resolvido}))", [("timestamp", "asc")]),
            ],
        },
        {
            "name": "Tarefas",
            "description": "Tarefas criadas pelo assistente a pedido dos usuários.",
            "fields": [
                _f("Título", "singleLineText"),
                _f("descrição", "multilineText"),
                _f("status", "singleSelect", choices=_TASK_STATUS),
                _f("prioridade", "singleSelect", choices=_PRIORITIES),
                _date("vencimento"),
                _link("responsável", "Tarefas", True),
                _checkbox("concluída"),
                _f("estimativa (h)", "number", precision=1),
                _f("tags", "multipleSelects", choices=_TASK_TAGS),
                _f("anexos", "multipleAttachments", isReversed=False),
                _f(
                    "Email do responsável",
                    "multipleLookupValues",
                    recordLinkField="responsável",
                    fieldInLinkedTable="email",
                ),
                _f("Criado em", "createdTime"),
                _f(
                    "Status atualizado em",
                    "lastModifiedTime",
                    "Muda só quando o status muda",
                    referencedFields=["status"],
                ),
            ],
            "views": [
                _grid("Grid view"),
                _grid(
                    "Abertas",
                    "AND({status} != 'Concluída', {status} != 'Cancelada')",
                    [("prioridade", "desc"), ("vencimento", "asc")],
                ),
                _grid("Urgentes", "{prioridade} = 'Urgente'", [("vencimento", "asc")]),
            ],
        },
        {
            "name": "Eventos",
            "description": "Compromissos da agenda dos usuários.",
            "fields": [
                _f("Nome", "singleLineText"),
                _datetime("início"),
                _datetime("fim"),
                _f("local", "singleLineText"),
                _link("participantes", "Eventos", False),
                _f("tipo", "singleSelect", choices=_EVENT_TYPES),
                _f("url", "url", "Link da reunião on-line"),
                _f("descrição", "multilineText"),
            ],
            "views": [
                _grid("Grid view"),
                _grid("Agenda", sort=[("início", "asc")]),
                _grid("Reuniões on-line", "AND({tipo} = 'Reunião', {url} != '')", [("início", "asc")]),
            ],
        },
        {
            "name": "Memória Contextual",
            "description": "O que o assistente lembra sobre cada usuário.",
            "fields": [
                _f("Chave", "singleLineText"),
                _link("usuário", "Memória Contextual", True),
                _f("conteúdo", "multilineText"),
                _f("relevância", "percent", precision=0),
                _date("expira em"),
                _f("categoria", "singleSelect", choices=_MEMORY_CATEGORIES),
            ],
            "views": [
                _grid("Grid view"),
                _grid("Alta relevância", "{relevância} >= 0.7", [("relevância", "desc")]),
            ],
        },
        {
            "name": "Logs do Sistema",
            "description": "Eventos técnicos do cache, consultas, backups e webhooks.",
            "fields": [
                _f("Mensagem", "singleLineText"),
                _f("nível", "singleSelect", choices=_LOG_LEVELS),
                _datetime("timestamp"),
                _f("componente", "singleSelect", choices=_COMPONENTS),
                _f("duração (ms)", "number", precision=0),
                _link("usuário", "Logs do Sistema", True),
                _f("detalhes", "multilineText", "Contexto em JSON"),
            ],
            "views": [
                _grid("Grid view"),
                _grid("Erros e avisos", "OR({nível} = 'ERROR', {nível} = 'WARN')", [("timestamp", "desc")]),
            ],
        },
        {
            "name": "Métricas",
            "description": "Métricas de uso, performance e armazenamento coletadas periodicamente.",
            "fields": [
                _f("Nome", "singleLineText"),
                _f("tipo", "singleSelect", choices=_METRIC_TYPES),
                _f("valor", "number", precision=2),
                _f("unidade", "singleLineText"),
                _f("período", "singleSelect", choices=_PERIODS),
                _datetime("coletado em"),
            ],
            "views": [
                _grid("Grid view"),
                _grid("Por tipo", sort=[("tipo", "asc"), ("coletado em", "desc")]),
            ],
        },
    ],
}


def sample_schema() -> dict:
    """The sample base spec (a fresh copy each call, safe to mutate)."""
    return copy.deepcopy(_SCHEMA)


# --------------------------------------------------------------------------------------------------
# Vocabulary

_FIRST_NAMES = [
    "Ana",
    "Beatriz",
    "Bruno",
    "Camila",
    "Carlos",
    "Cecília",
    "Daniel",
    "Débora",
    "Eduardo",
    "Fernanda",
    "Gabriel",
    "Giovana",
    "Gustavo",
    "Helena",
    "Igor",
    "Isabela",
    "João",
    "Júlia",
    "Larissa",
    "Leonardo",
    "Letícia",
    "Lucas",
    "Luíza",
    "Marcelo",
    "Mariana",
    "Matheus",
    "Natália",
    "Otávio",
    "Patrícia",
    "Paulo",
    "Rafael",
    "Renata",
    "Rodrigo",
    "Sabrina",
    "Sérgio",
    "Tatiana",
    "Thiago",
    "Valéria",
    "Vinícius",
    "Yasmin",
    "Antônio",
    "Conceição",
    "Fábio",
    "Márcia",
    "Simão",
    "Raquel",
    "Henrique",
    "Lívia",
    "Caio",
    "Íris",
]
_LAST_NAMES = [
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Rodrigues",
    "Ferreira",
    "Alves",
    "Pereira",
    "Lima",
    "Gomes",
    "Costa",
    "Ribeiro",
    "Martins",
    "Carvalho",
    "Almeida",
    "Lopes",
    "Soares",
    "Fernandes",
    "Vieira",
    "Barbosa",
    "Rocha",
    "Dias",
    "Nascimento",
    "Andrade",
    "Moreira",
    "Nunes",
    "Marques",
    "Machado",
    "Mendes",
    "Freitas",
    "Cardoso",
    "Ramos",
    "Gonçalves",
    "Araújo",
    "Teixeira",
    "Correia",
    "Brandão",
    "Magalhães",
    "Assunção",
    "Simões",
]
# Names that break naive quoting: apostrophes, double quotes, diacritics beyond Latin-1.
_TRICKY_NAMES = [
    "Pedro D'Ávila",
    "Maria da Conceição O'Neill",
    'Ana "Aninha" Ribeiro',
    "Zoë Müller-Lüdenscheidt",
    "Joana D'Arc Gonçalves",
    "Luís Gonçalves Júnior",
]
_DOMAINS = ["gmail.com", "outlook.com", "hotmail.com", "yahoo.com.br", "uol.com.br", "empresa.com.br", "beststag.app"]
_DDDS = ["11", "21", "31", "41", "48", "51", "61", "71", "81", "85", "19", "27"]

_WEEKDAYS = ["segunda", "terça", "quarta", "quinta", "sexta", "sábado", "domingo"]
_PEOPLE = [
    "Dr. Marcos",
    "a Ju",
    "o Rafa",
    "minha mãe",
    "o cliente da Acme",
    "a equipe de vendas",
    "o contador",
    "a Dra. Paula",
    "o síndico",
    "a professora",
]
_SUBJECTS = [
    "relatório mensal",
    "proposta comercial",
    "orçamento da reforma",
    "plano de marketing",
    "contrato de aluguel",
    "apresentação do trimestre",
    "nota fiscal",
    "planilha de custos",
    "viagem a Recife",
    "consulta no dentista",
]

# (weight, summary template, message templates); placeholders: {hora} {dia} {pessoa} {assunto} {valor}
_INTENTS: list[tuple[float, str, list[str]]] = [
    (
        18,
        "Agendar reunião com {pessoa}",
        [
            "Marca uma reunião com {pessoa} na {dia} às {hora}?",
            "Preciso de uma call com {pessoa} {dia}, de preferência às {hora}.",
            "Oi! Consegue agendar com {pessoa} pra {dia}?\nPode ser às {hora}.",
        ],
    ),
    (
        16,
        "Criar tarefa: {assunto}",
        [
            "Cria uma tarefa pra eu revisar o {assunto} até {dia}.",
            "Anota aí: terminar {assunto}, prioridade alta.",
            "Me lembra de enviar o {assunto} para {pessoa}.",
        ],
    ),
    (
        14,
        "Lembrete às {hora}",
        [
            "Me lembra às {hora} de tomar o remédio.",
            "Lembrete: ligar para {pessoa} às {hora}.",
            "Não me deixa esquecer do {assunto} {dia} às {hora}!",
        ],
    ),
    (
        12,
        "Consulta de agenda ({dia})",
        [
            "O que eu tenho na agenda {dia}?",
            "Tenho algum compromisso {dia} à tarde?",
            "Quais reuniões eu tenho essa semana?",
        ],
    ),
    (
        10,
        "Dúvida sobre o plano",
        [
            "Quanto custa o plano Pro?",
            "Como faço pra mudar do Free pro Pro?",
            "Minha fatura veio R$ {valor}, tá certo isso?",
        ],
    ),
    (
        8,
        "Resumo do {assunto}",
        [
            "Me faz um resumo do {assunto}.",
            "Pode resumir o que falamos sobre o {assunto}?",
        ],
    ),
    (
        8,
        "Cancelar compromisso de {dia}",
        [
            "Cancela a reunião de {dia}, por favor.",
            "Desmarca o que eu tinha com {pessoa} {dia}.",
        ],
    ),
    (
        6,
        "Finanças: gasto de R$ {valor}",
        [
            "Registra um gasto de R$ {valor} com mercado.",
            "Quanto eu gastei esse mês? Acabei de pagar R$ {valor}.",
        ],
    ),
    (5, "Agradecimento", ["Valeu!", "Obrigado, ajudou muito.", "Perfeito, obrigada!"]),
    (
        3,
        "Reclamação",
        [
            "Você não me lembrou do {assunto} ontem.",
            "A resposta demorou demais hoje.",
        ],
    ),
]
_INTENT_CUM = list(accumulate(weight for weight, _, _ in _INTENTS))

# (summary, message) pairs used verbatim: emojis, quotes, backslashes, braces, newlines.
_TRICKY_MESSAGES = [
    ("Lembrete com emoji", "Bom dia! 😊 Pode me lembrar da reunião às 15h?"),
    ('Confirmação "tá bom" pendente', 'Ele respondeu "tá bom", mas não confirmou o horário.'),
    ("Arquivo em C:\\Users\\ana", "Salvei o arquivo em C:\\Users\\ana\\Documentos\\relatório.pdf, consegue ler?"),
    ("Lista de compras", "Lista de compras:\n- pão\n- leite\n- café ☕\n- 2 kg de feijão"),
    ("Contrato com o Sr. D'Ávila", "Preciso falar com o Sr. D'Ávila sobre o contrato {2024} — é urgente!!! 🚨"),
    ("Dúvida: 'A fazer' vs \"Em andamento\"", "Qual a diferença entre 'A fazer' e \"Em andamento\"? \\o/"),
    ("Só emojis", "🚀🚀🚀 👍🏽"),
    ("Fórmula citada pelo usuário", "Use a fórmula {status} = 'Ativo' pra filtrar, ok? Ou IF(x, \"a\", 'b')."),
]
_TRICKY_TASKS = [
    "Revisar contrato da D'Ávila & Filhos",
    'Preparar apresentação "Q3 — resultados"',
    "Backup da pasta C:\\Projetos\\BestStag",
    "Comprar presente 🎁 pra Zoë",
]

_TASK_TITLES = [
    "Revisar {assunto}",
    "Enviar {assunto} para {pessoa}",
    "Ligar para {pessoa}",
    "Pagar {assunto}",
    "Atualizar {assunto}",
    "Agendar retorno com {pessoa}",
    "Organizar {assunto}",
    "Responder e-mail de {pessoa}",
]
_TASK_DESCRIPTIONS = [
    "Combinado na conversa de {dia}. Verificar valores antes de enviar.",
    "Pedido via WhatsApp.\nConferir com {pessoa} antes.",
    "Prioridade definida pelo usuário. Prazo negociável.",
    "Checklist:\n1. Levantar dados\n2. Revisar\n3. Enviar",
]
_ESTIMATES = [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]

_EVENT_NAMES = {
    "Reunião": ["Reunião com {pessoa}", "Alinhamento semanal", "Revisão do {assunto}", "1:1 com {pessoa}"],
    "Consulta": ["Consulta com {pessoa}", "Dentista", "Exame de rotina"],
    "Lembrete": ["Pagar {assunto}", "Renovar documentos", "Entregar {assunto}"],
    "Aniversário": ["Aniversário de {pessoa}", "Festa surpresa 🎉"],
    "Viagem": ["Voo para Recife", "Viagem a Belo Horizonte", "Congresso em Curitiba"],
    "Outro": ["Academia", "Curso de inglês", "Mudança"],
}
_EVENT_TYPE_NAMES = list(_EVENT_NAMES)
_EVENT_TYPE_CUM = list(accumulate([40, 15, 15, 8, 7, 15]))
_PLACES = [
    "Sala 3",
    "Escritório — Av. Paulista, 1000",
    "Café do Centro",
    "Clínica São Lucas",
    "Aeroporto de Congonhas",
    "Casa",
    "Rua D'Ouro, 42",
]
_ONLINE = [
    ("Google Meet", "https://meet.google.com/{code}"),
    ("Zoom", "https://zoom.us/j/{num}"),
    ("Microsoft Teams", "https://teams.microsoft.com/l/meetup-join/{code}"),
]

# (categoria, chave, conteúdo)
_MEMORIES = [
    ("Preferência", "preferencia.horario_reunioes", "Prefere reuniões pela manhã, entre 9h e 11h."),
    ("Preferência", "preferencia.idioma", "Responder sempre em português, tom informal."),
    ("Preferência", "preferencia.canal", "Prefere receber lembretes pelo WhatsApp."),
    ("Fato pessoal", "fato.pet", "Tem um cachorro chamado Pipoca 🐶."),
    ("Fato pessoal", "fato.aniversario", "Faz aniversário em {dia_mes}."),
    ("Fato pessoal", "fato.cidade", "Mora em São Paulo, bairro Vila Madalena."),
    ("Contexto de trabalho", "trabalho.empresa", "Trabalha na Acme Ltda. como gerente de projetos."),
    ("Contexto de trabalho", "trabalho.projeto_atual", "Está tocando o {assunto}; entrega prevista para {dia}."),
    ("Histórico", "historico.ultima_reclamacao", "Reclamou de atraso no lembrete do {assunto}."),
    (
        "Histórico",
        "historico.resumo_semana",
        "Semana cheia: 5 reuniões, 3 tarefas concluídas.\nPediu menos notificações.",
    ),
    ("Lembrete", "lembrete.remedio", "Tomar remédio às 8h e às 20h."),
    ("Lembrete", 'lembrete."urgente"', "Chave com aspas: confirmar com o contador o 'IR 2024'."),
]

_LOG_LEVEL_NAMES = ["DEBUG", "INFO", "WARN", "ERROR"]
_LOG_LEVEL_CUM = list(accumulate([20, 55, 15, 10]))
_COMPONENT_NAMES = [c["name"] for c in _COMPONENTS]
_TABLE_NAMES = list(BASE_COUNTS)
_LOG_MESSAGES = {
    "DEBUG": [
        "Cache miss para {tabela}",
        "Consulta montada para {tabela}: {n} campos",
        "Chave de cache calculada para {tabela}",
    ],
    "INFO": [
        "Backup incremental concluído: {n} registros",
        "Cache aquecido para {tabela}",
        "Webhook recebido de n8n",
        "Métricas coletadas ({n} séries)",
        "{n} registros lidos de {tabela}",
    ],
    "WARN": [
        "Consulta lenta em {tabela}: {ms} ms",
        "Limite de 5 req/s atingido; aguardando",
        "Hit ratio abaixo de 60% em {tabela}",
    ],
    "ERROR": [
        "Falha no backup de {tabela}: timeout",
        "Airtable respondeu 503",
        "Webhook com assinatura inválida",
        "Erro ao gravar C:\\var\\backups\\{tabela}.jsonl",
    ],
}

# (nome, tipo, unidade, mínimo, máximo)
_METRIC_DEFS = [
    ("usuarios_ativos", "usage", "usuários", 10, 120),
    ("interacoes_por_hora", "usage", "req/h", 5, 400),
    ("crescimento_registros", "usage", "%", 0, 15),
    ("tempo_resposta_medio", "performance", "ms", 80, 900),
    ("taxa_erro", "performance", "%", 0, 6),
    ("cache_hit_ratio", "performance", "%", 40, 97),
    ("throughput", "performance", "ops/h", 100, 5000),
    ("uso_armazenamento", "storage", "MB", 50, 2000),
    ("anexos_total", "storage", "MB", 5, 500),
    ("registros_total", "storage", "registros", 500, 120000),
]
_PERIOD_NAMES = ["1h", "24h", "7d", "30d"]
_PERIOD_CUM = list(accumulate([35, 35, 20, 10]))


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _alnum(text: str) -> str:
    return "".join(c for c in _ascii(text).lower() if c.isalnum())


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() else "-" for c in _ascii(text).lower())
    return "-".join(part for part in out.split("-") if part) or "arquivo"


# --------------------------------------------------------------------------------------------------
# Attachments (tiny but well-formed files)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _png(rng: random.Random) -> bytes:
    """A valid RGB PNG of 12–24 px a side: 500–1,900 bytes (noise does not compress)."""
    side = rng.randint(12, 24)
    raw = b"".join(b"\x00" + rng.randbytes(side * 3) for _ in range(side))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw, 1))
        + _png_chunk(b"IEND", b"")
    )


def _pdf(title: str) -> bytes:
    """A one-page PDF showing `title` (about 600 bytes, with a correct xref table)."""
    text = _ascii(title).replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 14 Tf 72 720 Td ({text}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _csv(rng: random.Random) -> bytes:
    lines = ["data;descrição;valor"]
    while sum(len(line) + 1 for line in lines) < 240:
        lines.append(
            f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d};{rng.choice(_SUBJECTS)};"
            f"{rng.randint(10, 5000)},{rng.randint(0, 99):02d}"
        )
    return ("\n".join(lines) + "\n").encode("utf-8")


# --------------------------------------------------------------------------------------------------
# Generation


def _iso(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")[:-6] + "Z"


def _local_date(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms + _LOCAL_OFFSET)).date().isoformat()


class _Generator:
    def __init__(self, rng: random.Random, hi: int, counts: dict[str, int]) -> None:
        self.rng = rng
        self.hi = hi  # `now` floored to the second, in epoch ms
        self.lo = hi - _WINDOW + _SECOND
        self.counts = counts
        # UTC instant of today's local midnight.
        self.midnight = (hi + _LOCAL_OFFSET) // _DAY * _DAY - _LOCAL_OFFSET
        self.user_keys: list[str] = []
        self.user_times: list[int] = []
        self.user_cum: list[float] = []
        self.user_last: list[int] = []

    # -- times -------------------------------------------------------------------------------

    def times(self, n: int, recency: float, daytime: bool) -> list[int]:
        """`n` sorted instants in [lo, hi]; recency > 1 crowds them towards now, < 1 towards the past;
        daytime draws the local hour from the assistant's usual activity curve."""
        rng, lo, hi = self.rng, self.lo, self.hi
        out: list[int] = []
        if not daytime:
            span = hi - lo
            out = [hi - int(span * rng.random() ** recency) for _ in range(n)]
        else:
            hours = rng.choices(range(24), cum_weights=_HOUR_CUM, k=n)
            for hour in hours:
                day = min(int(WINDOW_DAYS * rng.random() ** recency), WINDOW_DAYS - 1)
                t = self.midnight - day * _DAY + hour * _HOUR + rng.randrange(_HOUR)
                if t > hi:
                    t -= _DAY
                if t < lo:
                    t += _DAY
                if not lo <= t <= hi:
                    t = rng.randint(lo, hi)
                out.append(t)
        out.sort()
        return out

    def finish(self, table: str, times: list[int], rows: list[dict[str, Any]]) -> list[SampleRecord]:
        rng, hi = self.rng, self.hi
        width = max(4, len(str(len(times))))
        records = []
        for i, (t, fields) in enumerate(zip(times, rows, strict=True)):
            m = t + int((hi - t) * rng.random() ** 2) if rng.random() < 0.3 else t
            created = _EPOCH + timedelta(milliseconds=t)
            modified = created if m == t else _EPOCH + timedelta(milliseconds=m)
            records.append(SampleRecord(f"{table}:{i + 1:0{width}d}", created, modified, fields))
        return records

    def pick_user(self, t: int) -> int:
        """A user created at or before `t`, weighted by how active each user is."""
        k = max(1, bisect_right(self.user_times, t))
        r = self.rng.random() * self.user_cum[k - 1]
        return min(bisect_right(self.user_cum, r), k - 1)

    def params(self) -> dict[str, str]:
        """Values for the text templates' placeholders; one set per record keeps texts consistent."""
        rng = self.rng
        return {
            "hora": f"{rng.randint(7, 20)}h{rng.choice(('', '30', '15'))}",
            "dia": rng.choice(_WEEKDAYS),
            "pessoa": rng.choice(_PEOPLE),
            "assunto": rng.choice(_SUBJECTS),
            "valor": f"{rng.randint(10, 999)},{rng.randint(0, 99):02d}",
            "dia_mes": f"{rng.randint(1, 28)}/{rng.randint(1, 12):02d}",
        }

    def fill(self, template: str, params: dict[str, str] | None = None) -> str:
        if "{" not in template:
            return template
        return template.format(**(params or self.params()))

    # -- tables ------------------------------------------------------------------------------

    def users(self) -> list[SampleRecord]:
        rng, n = self.rng, self.counts["Usuários"]
        # The first user exists from the start of the window, so every later record has someone
        # to link to; sign-ups lean towards the past (an initial wave, then steady growth).
        times = [self.lo, *self.times(n - 1, 0.8, daytime=True)]
        plans = rng.choices(list(PLANS), weights=[55, 35, 10], k=n)
        seen_emails: set[str] = set()
        rows: list[dict[str, Any]] = []
        weights: list[float] = []
        for i, t in enumerate(times):
            if i % 17 == 3:
                name = _TRICKY_NAMES[(i // 17) % len(_TRICKY_NAMES)]
            else:
                name = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
                if rng.random() < 0.3:
                    name += f" {rng.choice(_LAST_NAMES)}"
            parts = [p for p in (_alnum(w) for w in name.split()) if p]
            local = f"{parts[0]}.{parts[-1]}" if len(parts) > 1 else parts[0]
            domain = rng.choice(_DOMAINS)
            email, suffix = f"{local}@{domain}", 1
            while email in seen_emails:
                suffix += 1
                email = f"{local}{suffix}@{domain}"
            seen_emails.add(email)
            active = rng.random() < 0.7
            plan = plans[i]
            fields: dict[str, Any] = {"Nome": name, "email": email}
            if rng.random() < 0.85:
                fields["telefone"] = f"+55 {rng.choice(_DDDS)} 9{rng.randint(1000, 9999)}-{rng.randint(0, 9999):04d}"
            fields["plano"] = plan
            fields["mensalidade"] = PLANS[plan]
            fields["status"] = "Ativo" if active else "Inativo"
            fields["data de cadastro"] = _local_date(t)
            if active and rng.random() < 0.8:
                fields["ativo no WhatsApp"] = True
            if rng.random() < 0.15:
                fields["avatar"] = [SampleAttachment(f"avatar-{parts[0]}.png", "image/png", _png(rng))]
            tag_count = rng.choices((0, 1, 2), weights=(60, 30, 10))[0]
            if tag_count:
                fields["tags"] = [c["name"] for c in rng.sample(_USER_TAGS, tag_count)]
            rows.append(fields)
            weights.append(rng.paretovariate(1.3) * (1.0 if active else 0.15))
        records = self.finish("Usuários", times, rows)
        self.user_keys = [r.key for r in records]
        self.user_times = times
        self.user_cum = list(accumulate(weights))
        self.user_last = [-1] * n
        return records

    def interactions(self) -> list[SampleRecord]:
        rng, n, lo = self.rng, self.counts["Interações"], self.lo
        times = self.times(n, 1.8, daytime=True)
        channels = rng.choices(["WhatsApp", "Email", "Web", "Telegram"], weights=[60, 15, 15, 10], k=n)
        sentiments = rng.choices(["Positivo", "Neutro", "Negativo"], weights=[30, 55, 15], k=n)
        rows: list[dict[str, Any]] = []
        for i, t in enumerate(times):
            if i % 20 == 7:
                summary, message = _TRICKY_MESSAGES[(i // 20) % len(_TRICKY_MESSAGES)]
            else:
                intent = _INTENTS[bisect_right(_INTENT_CUM, rng.random() * _INTENT_CUM[-1])]
                params = self.params()
                summary = self.fill(intent[1], params)
                message = self.fill(rng.choice(intent[2]), params)
            user = self.pick_user(t)
            stamp = max(lo, t - rng.randrange(3 * _SECOND))
            if stamp > self.user_last[user]:
                self.user_last[user] = stamp
            fields: dict[str, Any] = {
                "Resumo": summary,
                "user": [self.user_keys[user]],
                "message": message,
                "timestamp": _iso(stamp),
                "canal": channels[i],
                "sentimento": sentiments[i],
                "tokens": min(4000, max(8, int(rng.lognormvariate(5.3, 0.7)))),
                "duração (s)": round(rng.uniform(0.4, 12.0), 2),
            }
            if rng.random() < 0.78:
                fields["resolvido"] = True
            rows.append(fields)
        return self.finish("Interações", times, rows)

    def set_last_access(self, users: list[SampleRecord]) -> None:
        for record, last in zip(users, self.user_last, strict=True):
            if last >= 0:
                record.fields["último acesso"] = _iso(last)

    def tasks(self) -> list[SampleRecord]:
        rng, n = self.rng, self.counts["Tarefas"]
        times = self.times(n, 1.3, daytime=True)
        statuses = rng.choices(["A fazer", "Em andamento", "Concluída", "Cancelada"], weights=[35, 25, 32, 8], k=n)
        priorities = rng.choices(["Baixa", "Média", "Alta", "Urgente"], weights=[25, 40, 25, 10], k=n)
        rows: list[dict[str, Any]] = []
        for i, t in enumerate(times):
            params = self.params()
            title = (
                _TRICKY_TASKS[(i // 25) % len(_TRICKY_TASKS)]
                if i % 25 == 4
                else self.fill(rng.choice(_TASK_TITLES), params)
            )
            fields: dict[str, Any] = {"Título": title}
            if rng.random() < 0.7:
                fields["descrição"] = self.fill(rng.choice(_TASK_DESCRIPTIONS), params)
            fields["status"] = statuses[i]
            fields["prioridade"] = priorities[i]
            if rng.random() < 0.85:
                fields["vencimento"] = _local_date(t + rng.randint(0, 30) * _DAY)
            if rng.random() < 0.9:
                fields["responsável"] = [self.user_keys[self.pick_user(t)]]
            if statuses[i] == "Concluída":
                fields["concluída"] = True
            if rng.random() < 0.8:
                fields["estimativa (h)"] = rng.choice(_ESTIMATES)
            tag_count = rng.choices((0, 1, 2, 3), weights=(40, 35, 18, 7))[0]
            if tag_count:
                fields["tags"] = [c["name"] for c in rng.sample(_TASK_TAGS, tag_count)]
            if rng.random() < 0.05:
                fields["anexos"] = [self.attachment(title) for _ in range(rng.randint(1, 2))]
            rows.append(fields)
        return self.finish("Tarefas", times, rows)

    def attachment(self, title: str) -> SampleAttachment:
        rng = self.rng
        kind = rng.random()
        if kind < 0.5:
            name = "orçamento final (v2).pdf" if rng.random() < 0.2 else f"{_slug(title)[:40]}.pdf"
            return SampleAttachment(name, "application/pdf", _pdf(title))
        if kind < 0.8:
            return SampleAttachment(f"captura de tela {rng.randint(1, 99)}.png", "image/png", _png(rng))
        name = "nota d'água.csv" if rng.random() < 0.3 else "gastos.csv"
        return SampleAttachment(name, "text/csv", _csv(rng))

    def events(self) -> list[SampleRecord]:
        rng, n = self.rng, self.counts["Eventos"]
        times = self.times(n, 1.2, daytime=True)
        kinds = rng.choices(_EVENT_TYPE_NAMES, cum_weights=_EVENT_TYPE_CUM, k=n)
        rows: list[dict[str, Any]] = []
        for i, t in enumerate(times):
            kind = kinds[i]
            # Events are booked from a few days before to three weeks ahead, on the local half-hour.
            day_start = (t + _LOCAL_OFFSET) // _DAY * _DAY - _LOCAL_OFFSET
            start = day_start + rng.randint(-2, 21) * _DAY + rng.randint(16, 39) * (_HOUR // 2)
            while start < self.lo:
                start += _DAY
            end = start + rng.choice((15, 30, 45, 60, 60, 90, 120, 180)) * 60 * _SECOND
            params = self.params()
            fields: dict[str, Any] = {
                "Nome": self.fill(rng.choice(_EVENT_NAMES[kind]), params),
                "início": _iso(start),
                "fim": _iso(end),
            }
            place = rng.random()
            if kind == "Reunião" and place < 0.5:
                label, url = rng.choice(_ONLINE)
                fields["local"] = label
                fields["url"] = url.format(
                    code=f"{_slug(rng.choice(_SUBJECTS))}-{rng.randint(100, 999)}", num=rng.randint(10**9, 10**10 - 1)
                )
            elif place < 0.8:
                fields["local"] = rng.choice(_PLACES)
            k = bisect_right(self.user_times, t) or 1
            chosen = {self.pick_user(t) for _ in range(rng.randint(1, 4))}
            if len(chosen) < 2 and k > 1 and kind == "Reunião":
                chosen.add(rng.randrange(k))
            fields["participantes"] = [self.user_keys[u] for u in sorted(chosen)]
            if rng.random() < 0.4:
                fields["descrição"] = self.fill(rng.choice(_TASK_DESCRIPTIONS), params)
            rows.append(fields)
        return self.finish("Eventos", times, rows)

    def memories(self) -> list[SampleRecord]:
        rng, n = self.rng, self.counts["Memória Contextual"]
        times = self.times(n, 1.3, daytime=True)
        rows: list[dict[str, Any]] = []
        for t in times:
            category, key, content = rng.choice(_MEMORIES)
            fields: dict[str, Any] = {
                "Chave": key,
                "usuário": [self.user_keys[self.pick_user(t)]],
                "conteúdo": self.fill(content),
                "relevância": round(rng.betavariate(2.5, 1.8), 2),
            }
            if rng.random() < 0.6:
                fields["expira em"] = _local_date(t + rng.randint(7, 90) * _DAY)
            fields["categoria"] = category
            rows.append(fields)
        return self.finish("Memória Contextual", times, rows)

    def logs(self) -> list[SampleRecord]:
        rng, n = self.rng, self.counts["Logs do Sistema"]
        times = self.times(n, 1.5, daytime=False)
        levels = rng.choices(_LOG_LEVEL_NAMES, cum_weights=_LOG_LEVEL_CUM, k=n)
        rows: list[dict[str, Any]] = []
        for i, t in enumerate(times):
            level = levels[i]
            component = rng.choice(_COMPONENT_NAMES)
            table = rng.choice(_TABLE_NAMES)
            ms = int(rng.lognormvariate(4.5, 1.0)) + 1
            message = rng.choice(_LOG_MESSAGES[level]).format(tabela=table, n=rng.randint(1, 5000), ms=ms)
            fields: dict[str, Any] = {
                "Mensagem": message,
                "nível": level,
                "timestamp": _iso(t),
                "componente": component,
            }
            if rng.random() < 0.85:
                fields["duração (ms)"] = ms
            if rng.random() < 0.45:
                fields["usuário"] = [self.user_keys[self.pick_user(t)]]
            if level in ("WARN", "ERROR") or rng.random() < 0.15:
                fields["detalhes"] = (
                    f'{{"componente": "{component}", "tabela": "{table}", '
                    f'"arquivo": "C:\\\\var\\\\beststag\\\\{_slug(table)}.log", '
                    f'"mensagem": "falha em \\"{table}\\"", "tentativa": {rng.randint(1, 5)}}}'
                )
            rows.append(fields)
        return self.finish("Logs do Sistema", times, rows)

    def metrics(self) -> list[SampleRecord]:
        rng, n = self.rng, self.counts["Métricas"]
        times = self.times(n, 1.0, daytime=False)
        periods = rng.choices(_PERIOD_NAMES, cum_weights=_PERIOD_CUM, k=n)
        rows: list[dict[str, Any]] = []
        for i, t in enumerate(times):
            # Every metric appears at least once (when there is room), then at random.
            metric = _METRIC_DEFS[i] if i < len(_METRIC_DEFS) else rng.choice(_METRIC_DEFS)
            name, kind, unit, low, high = metric
            rows.append(
                {
                    "Nome": name,
                    "tipo": kind,
                    "valor": round(rng.uniform(low, high), 2),
                    "unidade": unit,
                    "período": periods[i],
                    "coletado em": _iso(t),
                }
            )
        return self.finish("Métricas", times, rows)


def _counts(scale: float) -> dict[str, int]:
    return {table: max(1, round(count * scale)) for table, count in BASE_COUNTS.items()}


def generate_sample(seed: int = 42, scale: float = 1.0, now: datetime | None = None) -> SampleData:
    """Deterministic sample records for the BestStag base.

    `scale` multiplies `BASE_COUNTS` (1 ≈ 2,000 records, 50 ≈ 100,000), at least one record per
    table. `now` (default `clock.now()`; a naive value is read as UTC) is the end of the 60-day
    window the records were created in. Raises ValueError when `scale` is not positive.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    when = clock.now() if now is None else now
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    hi = (when - _EPOCH) // timedelta(seconds=1) * _SECOND
    gen = _Generator(random.Random(seed), hi, _counts(scale))
    users = gen.users()
    interactions = gen.interactions()
    gen.set_last_access(users)
    tables = {
        "Usuários": users,
        "Interações": interactions,
        "Tarefas": gen.tasks(),
        "Eventos": gen.events(),
        "Memória Contextual": gen.memories(),
        "Logs do Sistema": gen.logs(),
        "Métricas": gen.metrics(),
    }
    return SampleData(schema=sample_schema(), tables=tables)
