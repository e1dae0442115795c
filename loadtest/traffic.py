"""Realistic vote traffic: Guatemalan bands with a skewed (Zipf-like) popularity.

Used by the locustfile and by the benchmark, so both send the same kind of votes. Pure Python, no
I/O, no locust import: `python -m loadtest.traffic` prints a sample.

Popularity follows the list order: the band at position i gets weight 1 / (i + 1) ** ZIPF_S, so
a handful of bands take most votes and the long tail still gets some, as in a real contest.
The head of the list (about the first 35 entries) are well-known Guatemalan artists; the tail
fills the long tail of a contest and its names are not verified. Albums and years are accurate for
the best-known acts (Alux Nahual, Ricardo Arjona, Gaby Moreno) and illustrative elsewhere: this is
load, not a discography; extend or correct it freely, nothing depends on the exact names.
`year` and `rank` go out as strings of digits on the original route (`POST /insert`), exactly
like the original traffic generators sent them.
"""

from __future__ import annotations

import itertools
import random
import uuid
from typing import Any

ZIPF_S = 1.1
RANK_MAX = 100

# (band, [(album, year), ...]) in order of popularity.
BANDS: list[tuple[str, list[tuple[str, int]]]] = [
    (
        "Ricardo Arjona",
        [
            ("Si el norte fuera el sur", 1996),
            ("Historias", 1994),
            ("Sin daños a terceros", 1998),
            ("Galería Caribe", 2000),
            ("Santo pecado", 2002),
            ("Adentro", 2005),
            ("Blanco", 2021),
            ("Negro", 2021),
        ],
    ),
    (
        "Malacates Trébol Shop",
        [
            ("Resurrección", 2004),
            ("Niño Viejo", 2010),
            ("Un Mal Dia En El Trebol", 1998),
            ("Pan", 2012),
        ],
    ),
    (
        "Alux Nahual",
        [
            ("Alux Nahual", 1981),
            ("Conquista", 1982),
            ("Hermanos de Sentimiento", 1984),
            ("Centroamérica", 1986),
            ("Alto al Fuego", 1987),
            ("La Trampa", 1989),
            ("Leyenda", 1990),
            ("Americamorfosis", 1993),
            ("Se Cantan Retratos", 1997),
            ("Murciélago Danzante", 2012),
            ("Sueños de Jade", 2016),
        ],
    ),
    (
        "Gaby Moreno",
        [
            ("Still the Unknown", 2008),
            ("Illustrated Songs", 2012),
            ("Postales", 2016),
            ("¡Spangled!", 2019),
            ("Alegoría", 2022),
        ],
    ),
    (
        "Bohemia Suburbana",
        [
            ("Bohemia Suburbana", 1994),
            ("Hablando con el Bolo", 1995),
            ("Sur", 1997),
            ("Pájaro Bobo", 2002),
        ],
    ),
    ("Viento en Contra", [("Viento en Contra", 2004), ("Días", 2007), ("Cascabel", 2011)]),
    ("Viernes Verde", [("Mujeres", 1999), ("Lo mejor de nada", 2003)]),
    ("La Tona", [("La Tona", 2006), ("Deshaciendo el cuerpo", 2012)]),
    ("Easy Easy", [("Easy Easy", 2009), ("Happy Happy", 2012)]),
    ("Tijuana Love", [("Tijuana Love", 2005), ("Cumbia del Amor", 2009)]),
    ("Razones de Cambio", [("Razones de Cambio", 1996), ("Ya no", 1999)]),
    ("Radio Viejo", [("Radio Viejo", 2003)]),
    ("Extinción", [("Extinción", 1995), ("Réquiem", 1998)]),
    ("Ricardo Andrade", [("Solitarios", 2001), ("Canciones de Barrio", 2006)]),
    ("Sara Curruchich", [("Somos", 2019), ("Ixk'an", 2023)]),
    ("Rebeca Lane", [("Canto", 2013), ("Alma Mestiza", 2016), ("Obsidiana", 2019)]),
    ("Balam Ajpu", [("Jun Winaq", 2015), ("Xib'alb'a", 2019)]),
    ("Miel San Marcos", [("Tu Poder", 2005), ("Pentecostés", 2013), ("Venga Tu Reino", 2017)]),
    ("Fabiola Roudha", [("Fabiola Roudha", 2008), ("Hoy", 2014)]),
    ("Shery", [("Tan Sólo Una Mujer", 2011), ("Raíces", 2016)]),
    ("Francis Dávila", [("Francis Dávila", 2011), ("Vida", 2015)]),
    ("Tavo Bárcenas", [("Tavo Bárcenas", 2007)]),
    ("Legión", [("Legión", 1986)]),
    ("Influenza", [("Influenza", 2000)]),
    ("Yttrium", [("Yttrium", 2004)]),
    ("Sonora Chapina", [("Sabor Chapín", 1998)]),
    ("Marimba Chapinlandia", [("Luna de Xelajú", 1978), ("Chapinlandia", 1985)]),
    ("Marimba Orquesta Gallito", [("Gallito de Oro", 1970)]),
    ("Marimba Maderas de mi Tierra", [("Maderas de mi Tierra", 1995), ("Tradición", 2005)]),
    ("Marimba de Concierto de Bellas Artes", [("Sones de Guatemala", 1990)]),
    ("Marimba Femenina de Conciertos", [("Marimba de Concierto", 2001)]),
    ("Hugo Leonel Vaquerano", [("Mis Mejores Canciones", 1995)]),
    ("Álvaro Aguilar", [("Tren de Luz", 1996)]),
    ("Ranferí Aguilar", [("Solo", 2000)]),
    ("Paulo Alvarado", [("Cello", 2001)]),
    ("Sobrevivencia", [("Sobrevivencia", 1992)]),
    ("Los Tiros", [("Los Tiros", 2010)]),
    ("Vía Libre", [("Vía Libre", 1999)]),
    ("Sr. Méndez", [("Sr. Méndez", 2009)]),
    ("Santa Sangre", [("Santa Sangre", 2008)]),
    ("Bajo Sospecha", [("Bajo Sospecha", 2001)]),
    ("Caballo de Troya", [("Caballo de Troya", 1990)]),
    ("Los Bohemios", [("Bohemia", 1975)]),
    ("Cuarto Creciente", [("Cuarto Creciente", 2003)]),
    ("Mar de Fondo", [("Mar de Fondo", 2006)]),
    ("Umbral", [("Umbral", 1997)]),
    ("Ruido Blanco", [("Ruido Blanco", 2012)]),
    ("Tanke", [("Tanke", 1997)]),
    ("Kabawil", [("Kabawil", 2014)]),
    ("Quinto Sol", [("Quinto Sol", 1999)]),
    ("Doblemente Suspendido", [("Doblemente Suspendido", 2002)]),
    ("Vida Bohemia", [("Vida Bohemia", 2010)]),
    ("Rocola Chapina", [("Rocola", 2015)]),
    ("Cal y Arena", [("Cal y Arena", 2011)]),
    ("Ixchel", [("Ixchel", 2013)]),
    ("Metamorfosis", [("Metamorfosis", 1993)]),
    ("Frikis", [("Frikis", 2004)]),
    ("Rara Avis", [("Rara Avis", 2009)]),
    ("Sin Fronteras", [("Sin Fronteras", 2000)]),
    ("Señor Estrella", [("Señor Estrella", 2016)]),
]

_BAND_WEIGHTS = list(itertools.accumulate(1 / (i + 1) ** ZIPF_S for i in range(len(BANDS))))
_RANK_WEIGHTS = list(itertools.accumulate(1 / r**ZIPF_S for r in range(1, RANK_MAX + 1)))
_RANKS = list(range(1, RANK_MAX + 1))


class Traffic:
    """A deterministic (seeded) source of votes. Not thread-safe: one per user / worker."""

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)

    def vote(self, *, strings: bool = False, vote_id: bool = True) -> dict[str, Any]:
        """One vote; `strings` sends year and rank as the original generators did ("1983")."""
        rnd = self._random
        name, albums = rnd.choices(BANDS, cum_weights=_BAND_WEIGHTS)[0]
        # The first album of a band is its best known: a little more popular than the rest.
        album, year = albums[0] if rnd.random() < 0.4 else rnd.choice(albums)
        rank = rnd.choices(_RANKS, cum_weights=_RANK_WEIGHTS)[0]
        vote: dict[str, Any] = {
            "name": name,
            "album": album,
            "year": str(year) if strings else year,
            "rank": str(rank) if strings else rank,
        }
        if vote_id:
            vote["vote_id"] = new_vote_id()
        return vote

    def batch(
        self, size: int, *, strings: bool | None = None, vote_id: bool = True
    ) -> list[dict[str, Any]]:
        """`size` votes; by default mixing the string and integer formats like a relay of many
        clients (`strings=False` for gRPC, whose proto has integer year and rank)."""
        return [
            self.vote(
                strings=self._random.random() < 0.5 if strings is None else strings, vote_id=vote_id
            )
            for _ in range(size)
        ]

    def batch_size(self, low: int = 10, high: int = 100) -> int:
        return self._random.randint(low, high)


def new_vote_id() -> str:
    return str(uuid.uuid4())


if __name__ == "__main__":  # pragma: no cover - a quick look at the traffic
    import collections
    import json

    traffic = Traffic(seed=1)
    print(json.dumps(traffic.vote(strings=True), ensure_ascii=False))
    top = collections.Counter(traffic.vote()["name"] for _ in range(10_000)).most_common(10)
    for name, count in top:
        print(f"{count / 100:5.1f}%  {name}")
