"""The datasets of the paper: files, content checksums and canonical sources.

Checksums were taken from the publishers' and widely used loaders' published values (torchvision,
TensorFlow Datasets) and cross-checked: the decompressed Fashion-MNIST hashes match Debian's
dataset-fashion-mnist package byte for byte.
"""

from __future__ import annotations

from pathlib import Path

from fpt.data import cifar, idx, listops, tape
from fpt.data.specs import Dataset, Download, dataset_file
from fpt.errors import FPTError

IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def read_idx_pair(directory: Path, prefix: str, num_classes: int = 10):
    """Images (n, 1, 28, 28) uint8 and labels (n,) int64 of `train` or `t10k`."""
    images = idx.read_idx(dataset_file(directory, f"{prefix}-images-idx3-ubyte.gz"))
    labels_path = dataset_file(directory, f"{prefix}-labels-idx1-ubyte.gz")
    labels = idx.read_idx(labels_path).astype("int64")
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise FPTError(
            f"{directory}: {prefix} images {images.shape} and labels {labels.shape} do not pair up; expected "
            "(n, rows, cols) images and n labels."
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise FPTError(f"{labels_path}: labels must be in [0, {num_classes}), found {labels.min()}..{labels.max()}.")
    return images[:, None], labels


def _idx_summary(directory: Path) -> str:
    return ", ".join(f"{len(read_idx_pair(directory, p)[1])} {s}" for p, s in (("train", "train"), ("t10k", "test")))


def _cifar_summary(directory: Path) -> str:
    base = directory / "cifar-10-batches-py"
    return f"{len(cifar.read_split(base, cifar.TRAIN_BATCHES)[1])} train, {len(cifar.read_split(base, (cifar.TEST_BATCH,))[1])} test"


def _listops_summary(directory: Path) -> str:
    splits = {s: listops.read_tsv(directory / f) for s, f in listops.SPLITS.items()}
    longest = max(len(t) for split in splits.values() for t in split.tokens)
    origin = f"; {listops.origin(directory)}" if (directory / "GENERATED").exists() else ""
    return ", ".join(f"{len(v.targets)} {k}" for k, v in splits.items()) + f"; longest {longest} tokens{origin}"


def _homology_summary(directory: Path) -> str:
    return ", ".join(f"{len(tape.read_lmdb(directory / f).targets)} {s}" for s, f in tape.SPLITS.items())


def _idx_dataset(
    name: str, base_url: str, gz: dict[str, str], raw: dict[str, str], description: str, **extra
) -> Dataset:
    return Dataset(
        name=name,
        description=description,
        summary=_idx_summary,
        files={f: f"sha256:{raw[f]}" for f in IDX_FILES},
        downloads=tuple(Download(base_url + f, gz[f]) for f in IDX_FILES),
        **extra,
    )


_TAPE_MEMBERS = {f"remote_homology/{f}/data.mdb": f"{f}/data.mdb" for f in tape.SPLITS.values()}

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        _idx_dataset(
            "mnist",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            gz={
                "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            },
            raw={
                "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            },
            description="MNIST handwritten digits (LeCun et al.), IDX, CVDF mirror of yann.lecun.com",
        ),
        _idx_dataset(
            "fashion-mnist",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            gz={
                "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            },
            raw={
                "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            },
            description="Fashion-MNIST (Zalando Research), IDX",
            system_dirs=("/usr/share/datasets/fashion-mnist",),
        ),
        Dataset(
            name="cifar10",
            description="CIFAR-10 python batches (Krizhevsky 2009); also the source of cifar10-lra",
            summary=_cifar_summary,
            # md5 of the extracted batches as published by torchvision; the archive is checked by SHA-256.
            files={
                f"cifar-10-batches-py/{n}": f"md5:{h}"
                for n, h in (
                    ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
                    ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
                    ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
                    ("data_batch_4", "634d18415352ddfa80567beed471001a"),
                    ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
                    ("test_batch", "40351d587109b95175f43aff81a1287e"),
                )
            },
            downloads=(
                Download(
                    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                    members={
                        f"cifar-10-batches-py/{n}": f"cifar-10-batches-py/{n}"
                        for n in (*cifar.TRAIN_BATCHES, cifar.TEST_BATCH)
                    },
                    size="163 MiB",
                ),
            ),
        ),
        Dataset(
            name="listops",
            description="Long Range Arena ListOps (listops-1000 basic_*.tsv)",
            summary=_listops_summary,
            files={f: None for f in listops.SPLITS.values()},
            downloads=(
                Download(
                    "https://storage.googleapis.com/long-range-arena/lra_release.gz",
                    None,
                    members={f"lra_release/listops-1000/{f}": f for f in listops.SPLITS.values()},
                    size="7.7 GB",
                ),
            ),
            generator="listops",
            notes=(
                "No checksum of lra_release.gz is published: its size and SHA-256 are recorded at the first verified "
                "download (trust on first use) and files are verified by reading them in full.",
            ),
        ),
        Dataset(
            name="remote-homology",
            description="TAPE remote homology (SCOP 1.75 folds), LMDB",
            summary=_homology_summary,
            files={f"{f}/data.mdb": None for f in tape.SPLITS.values()},
            downloads=(
                Download(
                    "https://s3.amazonaws.com/songlabdata/proteindata/data_pytorch/remote_homology.tar.gz",
                    None,
                    members=_TAPE_MEMBERS,
                    size="about 100 MB",
                ),
            ),
            notes=(
                "No checksum of remote_homology.tar.gz is published: its size and SHA-256 are recorded at the first "
                "verified download (trust on first use) and files are verified by reading them in full.",
            ),
            check_installed=tape.require_lmdb,
        ),
    )
}
