"""A deterministic, generated German-English corpus from a small grammar, for when no real corpus is available.

It exercises what makes German-English translation non-trivial for a small model while staying exactly correct:
article/adjective/noun agreement by gender, number and case (nominative subject, accusative object; weak, mixed
and strong adjective endings), verb-second main clauses (with inversion after a fronted adverb or subordinate
clause), verb-final subordinate clauses with "weil"/"dass", yes/no questions (verb-first; English do-support),
negation with "nicht" (English do-support), plurals and subject-verb agreement. ~300 lexical items.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# ---------------------------------------------------------------------------------------------------------------
# Lexicon. Nouns: German singular | German plural | gender | English singular | English plural | a=animate, t=thing.
# Only nouns with a regular (strong) singular declension, so the accusative singular equals the nominative.
# ---------------------------------------------------------------------------------------------------------------
_NOUNS = """
Hund|Hunde|m|dog|dogs|a
Mann|Männer|m|man|men|a
Vater|Väter|m|father|fathers|a
Bruder|Brüder|m|brother|brothers|a
Lehrer|Lehrer|m|teacher|teachers|a
Freund|Freunde|m|friend|friends|a
Arzt|Ärzte|m|doctor|doctors|a
Koch|Köche|m|cook|cooks|a
Bäcker|Bäcker|m|baker|bakers|a
König|Könige|m|king|kings|a
Vogel|Vögel|m|bird|birds|a
Fisch|Fische|m|fish|fish|a
Onkel|Onkel|m|uncle|uncles|a
Sohn|Söhne|m|son|sons|a
Künstler|Künstler|m|artist|artists|a
Schüler|Schüler|m|pupil|pupils|a
Fahrer|Fahrer|m|driver|drivers|a
Spieler|Spieler|m|player|players|a
Sänger|Sänger|m|singer|singers|a
Maler|Maler|m|painter|painters|a
Esel|Esel|m|donkey|donkeys|a
Wolf|Wölfe|m|wolf|wolves|a
Fuchs|Füchse|m|fox|foxes|a
Apfel|Äpfel|m|apple|apples|t
Tisch|Tische|m|table|tables|t
Stuhl|Stühle|m|chair|chairs|t
Brief|Briefe|m|letter|letters|t
Schlüssel|Schlüssel|m|key|keys|t
Wagen|Wagen|m|wagon|wagons|t
Zug|Züge|m|train|trains|t
Baum|Bäume|m|tree|trees|t
Garten|Gärten|m|garden|gardens|t
Ball|Bälle|m|ball|balls|t
Hut|Hüte|m|hat|hats|t
Mantel|Mäntel|m|coat|coats|t
Teller|Teller|m|plate|plates|t
Becher|Becher|m|mug|mugs|t
Stein|Steine|m|stone|stones|t
Berg|Berge|m|mountain|mountains|t
Fluss|Flüsse|m|river|rivers|t
Computer|Computer|m|computer|computers|t
Film|Filme|m|film|films|t
Kuchen|Kuchen|m|cake|cakes|t
Schuh|Schuhe|m|shoe|shoes|t
Koffer|Koffer|m|suitcase|suitcases|t
Spiegel|Spiegel|m|mirror|mirrors|t
Topf|Töpfe|m|pot|pots|t
Korb|Körbe|m|basket|baskets|t
Ring|Ringe|m|ring|rings|t
Knopf|Knöpfe|m|button|buttons|t
Frau|Frauen|f|woman|women|a
Mutter|Mütter|f|mother|mothers|a
Schwester|Schwestern|f|sister|sisters|a
Tochter|Töchter|f|daughter|daughters|a
Katze|Katzen|f|cat|cats|a
Maus|Mäuse|f|mouse|mice|a
Kuh|Kühe|f|cow|cows|a
Ente|Enten|f|duck|ducks|a
Königin|Königinnen|f|queen|queens|a
Ziege|Ziegen|f|goat|goats|a
Biene|Bienen|f|bee|bees|a
Schlange|Schlangen|f|snake|snakes|a
Großmutter|Großmütter|f|grandmother|grandmothers|a
Tante|Tanten|f|aunt|aunts|a
Blume|Blumen|f|flower|flowers|t
Tür|Türen|f|door|doors|t
Lampe|Lampen|f|lamp|lamps|t
Tasche|Taschen|f|bag|bags|t
Flasche|Flaschen|f|bottle|bottles|t
Tasse|Tassen|f|cup|cups|t
Uhr|Uhren|f|clock|clocks|t
Zeitung|Zeitungen|f|newspaper|newspapers|t
Karte|Karten|f|map|maps|t
Stadt|Städte|f|city|cities|t
Straße|Straßen|f|street|streets|t
Brücke|Brücken|f|bridge|bridges|t
Kirche|Kirchen|f|church|churches|t
Schule|Schulen|f|school|schools|t
Wand|Wände|f|wall|walls|t
Birne|Birnen|f|pear|pears|t
Gabel|Gabeln|f|fork|forks|t
Kiste|Kisten|f|box|boxes|t
Jacke|Jacken|f|jacket|jackets|t
Insel|Inseln|f|island|islands|t
Kerze|Kerzen|f|candle|candles|t
Decke|Decken|f|blanket|blankets|t
Nachricht|Nachrichten|f|message|messages|t
Geschichte|Geschichten|f|story|stories|t
Bank|Bänke|f|bench|benches|t
Pflanze|Pflanzen|f|plant|plants|t
Kind|Kinder|n|child|children|a
Mädchen|Mädchen|n|girl|girls|a
Pferd|Pferde|n|horse|horses|a
Schaf|Schafe|n|sheep|sheep|a
Schwein|Schweine|n|pig|pigs|a
Huhn|Hühner|n|chicken|chickens|a
Kaninchen|Kaninchen|n|rabbit|rabbits|a
Tier|Tiere|n|animal|animals|a
Kamel|Kamele|n|camel|camels|a
Baby|Babys|n|baby|babies|a
Buch|Bücher|n|book|books|t
Haus|Häuser|n|house|houses|t
Fenster|Fenster|n|window|windows|t
Bild|Bilder|n|picture|pictures|t
Glas|Gläser|n|glass|glasses|t
Messer|Messer|n|knife|knives|t
Ei|Eier|n|egg|eggs|t
Bett|Betten|n|bed|beds|t
Zimmer|Zimmer|n|room|rooms|t
Dorf|Dörfer|n|village|villages|t
Schiff|Schiffe|n|ship|ships|t
Boot|Boote|n|boat|boats|t
Fahrrad|Fahrräder|n|bicycle|bicycles|t
Lied|Lieder|n|song|songs|t
Geschenk|Geschenke|n|gift|gifts|t
Hemd|Hemden|n|shirt|shirts|t
Kleid|Kleider|n|dress|dresses|t
Heft|Hefte|n|notebook|notebooks|t
Schwert|Schwerter|n|sword|swords|t
Klavier|Klaviere|n|piano|pianos|t
Foto|Fotos|n|photo|photos|t
Telefon|Telefone|n|telephone|telephones|t
Spiel|Spiele|n|game|games|t
Rad|Räder|n|wheel|wheels|t
Dach|Dächer|n|roof|roofs|t
Paket|Pakete|n|parcel|parcels|t
Zelt|Zelte|n|tent|tents|t
"""

# Adjective stems (no e-elision stems like "teuer"/"dunkel"/"hoch", whose inflected forms change): German | English.
_ADJECTIVES = """
groß|big
klein|small
alt|old
jung|young
neu|new
rot|red
blau|blue
grün|green
schwarz|black
weiß|white
gelb|yellow
braun|brown
schön|beautiful
hässlich|ugly
laut|loud
leise|quiet
schnell|fast
langsam|slow
müde|tired
hungrig|hungry
glücklich|happy
traurig|sad
klug|clever
dumm|stupid
reich|rich
arm|poor
stark|strong
schwach|weak
krank|sick
freundlich|friendly
warm|warm
kalt|cold
schwer|heavy
leicht|light
billig|cheap
sauber|clean
schmutzig|dirty
lang|long
kurz|short
rund|round
leer|empty
voll|full
nass|wet
trocken|dry
fremd|foreign
berühmt|famous
hübsch|pretty
wild|wild
ruhig|calm
lustig|funny
seltsam|odd
"""

# Transitive verbs: ich | er/sie | wir/sie (plural) | English base | English 3sg | object class (a, t, * = any).
_TRANSITIVE = """
sehe|sieht|sehen|see|sees|*
finde|findet|finden|find|finds|*
suche|sucht|suchen|look for|looks for|*
mag|mag|mögen|like|likes|*
liebe|liebt|lieben|love|loves|*
male|malt|malen|paint|paints|*
zeichne|zeichnet|zeichnen|draw|draws|*
fotografiere|fotografiert|fotografieren|photograph|photographs|*
beobachte|beobachtet|beobachten|watch|watches|*
vermisse|vermisst|vermissen|miss|misses|*
kenne|kennt|kennen|know|knows|*
brauche|braucht|brauchen|need|needs|*
wasche|wäscht|waschen|wash|washes|*
habe|hat|haben|have|has|*
wähle|wählt|wählen|choose|chooses|*
höre|hört|hören|hear|hears|a
treffe|trifft|treffen|meet|meets|a
rufe|ruft|rufen|call|calls|a
besuche|besucht|besuchen|visit|visits|a
frage|fragt|fragen|ask|asks|a
füttere|füttert|füttern|feed|feeds|a
wecke|weckt|wecken|wake|wakes|a
kaufe|kauft|kaufen|buy|buys|t
verkaufe|verkauft|verkaufen|sell|sells|t
trage|trägt|tragen|carry|carries|t
öffne|öffnet|öffnen|open|opens|t
schließe|schließt|schließen|close|closes|t
hole|holt|holen|fetch|fetches|t
nehme|nimmt|nehmen|take|takes|t
baue|baut|bauen|build|builds|t
repariere|repariert|reparieren|repair|repairs|t
verliere|verliert|verlieren|lose|loses|t
bringe|bringt|bringen|bring|brings|t
werfe|wirft|werfen|throw|throws|t
verstecke|versteckt|verstecken|hide|hides|t
halte|hält|halten|hold|holds|t
teile|teilt|teilen|share|shares|t
putze|putzt|putzen|clean|cleans|t
zerbreche|zerbricht|zerbrechen|break|breaks|t
"""

# Intransitive verbs (animate subjects): ich | er/sie | plural | English base | English 3sg.
_INTRANSITIVE = """
schlafe|schläft|schlafen|sleep|sleeps
lache|lacht|lachen|laugh|laughs
weine|weint|weinen|cry|cries
singe|singt|singen|sing|sings
tanze|tanzt|tanzen|dance|dances
arbeite|arbeitet|arbeiten|work|works
spiele|spielt|spielen|play|plays
warte|wartet|warten|wait|waits
schwimme|schwimmt|schwimmen|swim|swims
laufe|läuft|laufen|run|runs
lese|liest|lesen|read|reads
esse|isst|essen|eat|eats
schreibe|schreibt|schreiben|write|writes
koche|kocht|kochen|cook|cooks
lerne|lernt|lernen|learn|learns
springe|springt|springen|jump|jumps
ruhe|ruht|ruhen|rest|rests
träume|träumt|träumen|dream|dreams
rede|redet|reden|talk|talks
"""

# Verbs taking a "dass"-clause: ich | er/sie | plural | English base | English 3sg.
_CLAUSAL = """
sage|sagt|sagen|say|says
glaube|glaubt|glauben|believe|believes
weiß|weiß|wissen|know|knows
denke|denkt|denken|think|thinks
hoffe|hofft|hoffen|hope|hopes
höre|hört|hören|hear|hears
merke|merkt|merken|notice|notices
"""

# Fronted adverbs (trigger subject-verb inversion in German, none in English).
_ADVERBS = """
heute|today
jetzt|now
manchmal|sometimes
oft|often
morgens|in the morning
abends|in the evening
hier|here
dort|there
"""

# Subject pronouns: German | English | person key (1sg, 3sg, pl).
_PRONOUNS = (
    ("ich", "I", "1sg"),
    ("er", "he", "3sg"),
    ("sie", "she", "3sg"),
    ("wir", "we", "pl"),
    ("sie", "they", "pl"),
)

# Determiners: key -> (German (nominative, accusative) by m/f/n/pl, English singular, English plural).
# "ein" and the possessives are "ein"-words (mixed adjective endings); the indefinite plural has no article.


def _ein_word(stem: str) -> dict[str, tuple[str, str]]:
    return {"m": (stem, stem + "en"), "f": (stem + "e", stem + "e"), "n": (stem, stem), "pl": (stem + "e", stem + "e")}


_DETERMINERS: dict[str, tuple[dict[str, tuple[str, str]], str, str]] = {
    "def": ({"m": ("der", "den"), "f": ("die", "die"), "n": ("das", "das"), "pl": ("die", "die")}, "the", "the"),
    "indef": ({**_ein_word("ein"), "pl": ("", "")}, "a", ""),
    "my": (_ein_word("mein"), "my", "my"),
    "his": (_ein_word("sein"), "his", "his"),
    "her": (_ein_word("ihr"), "her", "her"),
    "our": (_ein_word("unser"), "our", "our"),
}

# Adjective endings [declension][gender/number] -> (nominative, accusative).
_WEAK = {"m": ("e", "en"), "f": ("e", "e"), "n": ("e", "e"), "pl": ("en", "en")}  # after der/die/das
_MIXED = {"m": ("er", "en"), "f": ("e", "e"), "n": ("es", "es"), "pl": ("en", "en")}  # after ein/mein/...
_STRONG_PL = ("e", "e")  # no determiner (plural indefinite)


def _table(text: str) -> list[tuple[str, ...]]:
    return [tuple(line.split("|")) for line in text.strip().splitlines()]


@dataclass(frozen=True)
class _Noun:
    sg: str
    pl: str
    gender: str
    en_sg: str
    en_pl: str
    animate: bool


@dataclass(frozen=True)
class _Verb:
    first_sg: str
    third_sg: str
    plural: str
    en_base: str
    en_3sg: str
    objects: str = "*"

    def german(self, person: str) -> str:
        return {"1sg": self.first_sg, "3sg": self.third_sg, "pl": self.plural}[person]

    def english(self, person: str) -> str:
        return self.en_3sg if person == "3sg" else self.en_base


NOUNS = tuple(_Noun(sg, pl, g, esg, epl, kind == "a") for sg, pl, g, esg, epl, kind in _table(_NOUNS))
ADJECTIVES = tuple(_table(_ADJECTIVES))
TRANSITIVE_VERBS = tuple(_Verb(*row) for row in _table(_TRANSITIVE))
INTRANSITIVE_VERBS = tuple(_Verb(*row) for row in _table(_INTRANSITIVE))
CLAUSAL_VERBS = tuple(_Verb(*row) for row in _table(_CLAUSAL))
ADVERBS = tuple(_table(_ADVERBS))
_ANIMATE = tuple(noun for noun in NOUNS if noun.animate)
_THINGS = tuple(noun for noun in NOUNS if not noun.animate)


def lexicon_size() -> int:
    """Number of distinct lexical items (nouns, adjectives, verbs, adverbs, pronouns, determiners)."""
    return (
        len(NOUNS)
        + len(ADJECTIVES)
        + len(TRANSITIVE_VERBS)
        + len(INTRANSITIVE_VERBS)
        + len(CLAUSAL_VERBS)
        + len(ADVERBS)
        + len(_PRONOUNS)
        + len(_DETERMINERS)
    )


def _english_article(article: str, next_word: str) -> str:
    if article == "a" and next_word[0].lower() in "aeiou":
        return "an"
    return article


def noun_phrase(
    noun: _Noun, plural: bool, determiner: str, adjective: tuple[str, str] | None, case: int
) -> tuple[str, str]:
    """(German, English) noun phrase; `case` 0 = nominative, 1 = accusative. Agreement is by table lookup."""
    forms, en_sg, en_pl = _DETERMINERS[determiner]
    key = "pl" if plural else noun.gender
    german_det = forms[key][case]
    words_de = [german_det] if german_det else []
    english_det = en_pl if plural else en_sg
    en_noun = noun.en_pl if plural else noun.en_sg
    if adjective is not None:
        if not german_det:
            ending = _STRONG_PL[case]
        elif determiner == "def":
            ending = _WEAK[key][case]
        else:
            ending = _MIXED[key][case]
        stem = adjective[0]
        # Stems ending in -e ("leise", "müde") take the ending without doubling the e.
        words_de.append((stem[:-1] if stem.endswith("e") and ending.startswith("e") else stem) + ending)
        en_words = [adjective[1], en_noun]
    else:
        en_words = [en_noun]
    words_de.append(noun.pl if plural else noun.sg)
    if english_det:
        en_words.insert(0, _english_article(english_det, en_words[0]))
    return " ".join(words_de), " ".join(en_words)


@dataclass
class _Clause:
    """One clause, kept in parts so it can be rendered verb-second, verb-first or verb-final."""

    subject_de: str
    subject_en: str
    person: str
    verb: _Verb
    object_de: str | None = None
    object_en: str | None = None
    negated: bool = False  # only intransitive clauses are negated ("nicht" then has one correct position)
    complement: tuple[str, str] | None = None  # (German ", dass ..." clause, English " that ...") for clausal verbs

    def _middle_de(self) -> list[str]:
        middle = [self.object_de] if self.object_de else []
        return middle + (["nicht"] if self.negated else [])

    def german_main(self, fronted: str | None = None) -> str:
        """Verb-second: S V ..., or with a fronted element (adverb or subordinate clause) X V S ..."""
        verb = self.verb.german(self.person)
        head = [fronted, verb, self.subject_de] if fronted is not None else [self.subject_de, verb]
        text = " ".join(head + self._middle_de())
        return text + (self.complement[0] if self.complement else "")

    def german_question(self) -> str:
        """Verb-first yes/no question."""
        return " ".join([self.verb.german(self.person), self.subject_de] + self._middle_de())

    def german_subordinate(self, conjunction: str) -> str:
        """Verb-final: conj S ... V."""
        text = " ".join([conjunction, self.subject_de] + self._middle_de() + [self.verb.german(self.person)])
        return text + (self.complement[0] if self.complement else "")

    def english(self) -> str:
        """Declarative English: S V O, with do-support for negation."""
        if self.negated:
            aux = "does" if self.person == "3sg" else "do"
            words = [self.subject_en, aux, "not", self.verb.en_base]
        else:
            words = [self.subject_en, self.verb.english(self.person)]
        if self.object_en:
            words.append(self.object_en)
        return " ".join(words) + (self.complement[1] if self.complement else "")

    def english_question(self) -> str:
        aux = "Does" if self.person == "3sg" else "Do"
        words = [aux, self.subject_en, self.verb.en_base] + ([self.object_en] if self.object_en else [])
        return " ".join(words)


class _Generator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def noun_phrase(self, pool: tuple[_Noun, ...], case: int) -> tuple[str, str, str]:
        rng = self.rng
        noun = rng.choice(pool)
        plural = rng.random() < 0.3
        determiner = rng.choices(list(_DETERMINERS), weights=(5, 3, 1, 1, 1, 1))[0]
        adjective = rng.choice(ADJECTIVES) if rng.random() < 0.45 else None
        german, english = noun_phrase(noun, plural, determiner, adjective, case)
        return german, english, "pl" if plural else "3sg"

    def subject(self) -> tuple[str, str, str]:
        if self.rng.random() < 0.2:
            german, english, person = self.rng.choice(_PRONOUNS)
            return german, english, person
        return self.noun_phrase(_ANIMATE, 0)

    def clause(self, allow_complement: bool = False) -> _Clause:
        rng = self.rng
        subject_de, subject_en, person = self.subject()
        kind = rng.random()
        if allow_complement and kind < 0.15:
            verb = rng.choice(CLAUSAL_VERBS)
            inner = self.clause()
            complement = (", " + inner.german_subordinate("dass"), " that " + inner.english())
            return _Clause(subject_de, subject_en, person, verb, complement=complement)
        if kind < 0.4:
            verb = rng.choice(INTRANSITIVE_VERBS)
            return _Clause(subject_de, subject_en, person, verb, negated=rng.random() < 0.25)
        verb = rng.choice(TRANSITIVE_VERBS)
        pool = {"a": _ANIMATE, "t": _THINGS, "*": NOUNS}[verb.objects]
        object_de, object_en, _ = self.noun_phrase(pool, 1)
        return _Clause(subject_de, subject_en, person, verb, object_de, object_en)

    def sentence(self) -> tuple[str, str]:
        rng = self.rng
        form = rng.random()
        if form < 0.35:  # plain verb-second main clause (may embed a "dass" clause)
            clause = self.clause(allow_complement=True)
            de, en = clause.german_main() + ".", clause.english() + "."
        elif form < 0.5:  # fronted adverb: inversion in German, not in English
            adverb_de, adverb_en = rng.choice(ADVERBS)
            clause = self.clause(allow_complement=True)
            de, en = clause.german_main(fronted=adverb_de) + ".", f"{adverb_en} {clause.english()}."
        elif form < 0.7:  # main clause + verb-final "weil" clause
            main, reason = self.clause(), self.clause()
            de = f"{main.german_main()}, {reason.german_subordinate('weil')}."
            en = f"{main.english()} because {reason.english()}."
        elif form < 0.8:  # fronted "weil" clause: the main clause then starts with its verb
            reason, main = self.clause(), self.clause()
            de = main.german_main(fronted=reason.german_subordinate("weil") + ",") + "."
            en = f"because {reason.english()}, {main.english()}."
        elif form < 0.9:  # yes/no question: verb-first in German, do-support in English
            clause = self.clause()
            while clause.negated:
                clause = self.clause()
            de, en = clause.german_question() + "?", clause.english_question() + "?"
        else:  # "dass" clause under a clausal verb
            clause = self.clause()
            main_de, main_en, person = self.subject()
            verb = rng.choice(CLAUSAL_VERBS)
            outer = _Clause(main_de, main_en, person, verb, complement=(", " + clause.german_subordinate("dass"), ""))
            de = outer.german_main() + "."
            en = f"{outer.english()} that {clause.english()}."
        return _capitalise(de), _capitalise(en)


def _capitalise(text: str) -> str:
    return text[0].upper() + text[1:]


def generate_toy_pairs(num_pairs: int = 50_000, seed: int = 0) -> list[tuple[str, str]]:
    """`num_pairs` distinct (German, English) sentence pairs from the toy grammar; the same seed gives the same
    pairs in the same order, on every platform (only `random.Random` is used)."""
    if num_pairs < 1:
        raise ValueError(f"num_pairs must be >= 1, got {num_pairs}.")
    generator = _Generator(random.Random(seed))
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    attempts = 0
    while len(pairs) < num_pairs:
        attempts += 1
        if attempts > 20 * num_pairs + 1000:
            raise RuntimeError(f"The toy grammar produced only {len(pairs)} distinct pairs; ask for fewer.")
        de, en = generator.sentence()
        if de not in seen:
            seen.add(de)
            pairs.append((de, en))
    return pairs
