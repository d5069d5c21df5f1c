"""GLUE task registry, loading (hub parquet / GLUE TSV / offline hub) and tokenisation."""
import time

import numpy as np
import pytest

from glue import config as glue_config
from glue import data, synthetic, tasks
from jax_bert.data.tokenizer import wordpiece_tokenizer

SIZES = {"train": 20, "validation": 9, "test": 6, "validation_mismatched": 7}


@pytest.fixture(scope="module")
def glue_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("glue")
    hub = synthetic.write_synthetic_glue(root / "hub", "hub", SIZES)
    tsv = synthetic.write_synthetic_glue(root / "tsv", "tsv", SIZES)
    return {"hub": hub, "tsv": tsv}


@pytest.fixture(scope="module")
def tokenizer(glue_dirs):
    texts = []
    for name in tasks.TASK_NAMES:
        split = data.load_task(name, glue_dirs["hub"])["train"]
        for col in tasks.get_task(name).text_columns:
            texts += split[col]
    return wordpiece_tokenizer(texts, vocab_size=300, lowercase=True)


# ---------------------------------------------------------------- registry

def test_registry_protocol_defaults():
    assert tasks.TASK_NAMES == ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte",
                                "wnli")
    protocol = glue_config.get_config().tasks  # the protocol's epochs and runs are settings
    assert sorted(protocol.keys()) == sorted(tasks.TASK_NAMES)
    epochs = {n: protocol[n].epochs for n in tasks.TASK_NAMES}
    assert {n for n, e in epochs.items() if e == 5} == {"cola", "mrpc", "wnli"}
    assert set(epochs.values()) == {3, 5}
    runs = {n: protocol[n].runs for n in tasks.TASK_NAMES}
    assert runs == {"cola": 10, "rte": 10, "wnli": 10, "mrpc": 3, "stsb": 3, "sst2": 1,
                    "qqp": 1, "mnli": 1, "qnli": 1}
    assert tasks.get_task("mrpc").metric_names == ("f1", "accuracy")
    assert tasks.get_task("qqp").metric_names == ("accuracy", "f1")
    assert tasks.get_task("stsb").num_labels == 1 and tasks.get_task("stsb").is_regression
    mnli = tasks.get_task("mnli")
    assert mnli.validation_splits == ("validation_matched", "validation_mismatched")
    assert mnli.label_names == ("entailment", "neutral", "contradiction")
    assert set(mnli.submissions.values()) == {"MNLI-m.tsv", "MNLI-mm.tsv"}
    assert sum(len(tasks.get_task(n).submissions) for n in tasks.TASK_NAMES) == 10
    assert tasks.get_task("SST-2") is tasks.get_task("sst2")


def test_unknown_task_lists_valid_ones():
    with pytest.raises(ValueError, match="Unknown GLUE task 'colaa'.*cola, sst2.*wnli"):
        tasks.get_task("colaa")
    with pytest.raises(ValueError, match="valid tasks"):
        tasks.parse_tasks("cola,foo")


def test_parse_tasks():
    assert tasks.parse_tasks("cola,rte") == ("cola", "rte")
    assert tasks.parse_tasks(" RTE , cola,rte") == ("rte", "cola")
    assert tasks.parse_tasks("all") == tasks.TASK_NAMES
    assert tasks.parse_tasks(None) == tasks.TASK_NAMES


# ---------------------------------------------------------------- loading

@pytest.mark.parametrize("layout", ["hub", "tsv"])
@pytest.mark.parametrize("name", tasks.TASK_NAMES)
def test_local_layouts_load(glue_dirs, layout, name):
    task = tasks.get_task(name)
    loaded = data.load_task(name, glue_dirs[layout])
    assert tuple(loaded) == task.splits
    for split, ds in loaded.items():
        expected = synthetic.generate_split(task, split, synthetic._split_size(task, split, SIZES))
        n = len(expected["idx"])
        assert n == SIZES.get(split, SIZES["train" if split == "train" else
                                        "validation" if "validation" in split else "test"])
        assert set(ds) == set(task.text_columns) | {"idx", "label"}
        np.testing.assert_array_equal(ds["idx"], np.arange(n))
        for col in task.text_columns:
            assert ds[col] == expected[col]
        assert ds["label"].dtype == (np.float32 if task.is_regression else np.int64)
        np.testing.assert_allclose(ds["label"], expected["label"], atol=5e-4)
        if split in task.test_splits:
            assert np.all(ds["label"] == -1)
        elif not task.is_regression:
            assert ds["label"].min() >= 0 and ds["label"].max() < task.num_labels
    # The synthetic edge cases survive both layouts: unicode, empty, over-long text.
    last = task.text_columns[-1]
    assert any(w in loaded["train"][task.text_columns[0]][0] for w in synthetic.UNICODE_WORDS)
    assert loaded["train"][last][1] == ""
    assert len(loaded["train"][task.text_columns[0]][2].split()) >= synthetic.LONG_WORDS


def test_only_required_splits_when_tests_absent(glue_dirs, tmp_path):
    root = synthetic.write_synthetic_glue(tmp_path, "tsv", SIZES, tasks=["rte"])
    (root / "RTE" / "test.tsv").unlink()
    assert tuple(data.load_task("rte", root)) == ("train", "validation")
    with pytest.raises(data.GlueDataError, match="test.tsv"):
        data.load_task("rte", root, splits=["test"])


def _write(path, lines, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding=encoding)


def test_real_tsv_formats_and_label_conventions(tmp_path):
    """Hand-written rows in the original files' formats (not from synthetic.py)."""
    t = "\t"
    _write(tmp_path / "CoLA" / "train.tsv",
           ["gj04\t1\t\tOur friends won't buy this analysis, let alone the next one we propose.",
            "gj04\t0\t*\tThey drank the pub."])
    _write(tmp_path / "CoLA" / "dev.tsv", ["gj04\t1\t\tThe sailors rode the breeze clear of "
                                           "the rocks."])
    _write(tmp_path / "CoLA" / "test.tsv", ["index\tsentence", "0\tBill whistled past the house."])
    mnli_cols = ("index promptID pairID genre sentence1_binary_parse sentence2_binary_parse "
                 "sentence1_parse sentence2_parse sentence1 sentence2").split()
    parse = "( ( x ) )"
    _write(tmp_path / "MNLI" / "train.tsv", [
        t.join(mnli_cols + ["label1", "gold_label"]),
        t.join(["0", "31193", "31193n", "government", parse, parse, parse, parse,
                'Conceptually "cream" skimming', "Product and geography", "neutral", "neutral"]),
        t.join(["1", "101457", "101457e", "telephone", parse, parse, parse, parse,
                "you know during the season", "You lose the things", "entailment",
                "entailment"])])
    dev = [t.join(mnli_cols + [f"label{i}" for i in range(1, 6)] + ["gold_label"]),
           t.join(["0", "63735", "63735n", "slate", parse, parse, parse, parse, "The new rights",
                   "Everyone really likes", "neutral", "entailment", "neutral", "neutral",
                   "neutral", "contradiction"])]
    _write(tmp_path / "MNLI" / "dev_matched.tsv", dev)
    _write(tmp_path / "MNLI" / "dev_mismatched.tsv", dev)
    _write(tmp_path / "MRPC" / "train.tsv",
           ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
            "1\t702876\t702977\tAmrozi accused his brother\tReferring to him"],
           encoding="utf-8-sig")  # the real file starts with a byte-order mark
    _write(tmp_path / "MRPC" / "dev.tsv", ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
                                           "0\t1\t2\tHe said\tShe said"])
    _write(tmp_path / "QNLI" / "train.tsv", ["index\tquestion\tsentence\tlabel",
                                             "0\tWhat came?\tThe net came.\tnot_entailment",
                                             "1\tWho?\tHe did.\tentailment"])
    _write(tmp_path / "QNLI" / "dev.tsv", ["index\tquestion\tsentence\tlabel",
                                           "0\tWhy?\tBecause.\tentailment"])
    _write(tmp_path / "QQP" / "train.tsv", ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
                                            "0\t1\t2\tHow?\tHow so?\t1",
                                            "1\t3\t4\tbroken row",  # skipped, as HF does
                                            "2\t5\t6\tWhy?\tWhat?\t0"])
    _write(tmp_path / "QQP" / "dev.tsv", ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
                                          "0\t1\t2\tA?\tB?\t0"])
    stsb_header = ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
                   "sentence2\tscore")
    for f in ("train.tsv", "dev.tsv"):
        _write(tmp_path / "STS-B" / f, [stsb_header, t.join(
            ["0", "main-captions", "MSRvid", "2012test", "0001", "none", "none",
             "A plane is taking off.", "An air plane is taking off.", "5.000"])])
    stsb = data.load_task("stsb", tmp_path)["validation"]
    assert stsb["sentence2"] == ["An air plane is taking off."]
    assert stsb["label"].dtype == np.float32 and stsb["label"].tolist() == [5.0]
    cola = data.load_task("cola", tmp_path)
    assert cola["train"]["label"].tolist() == [1, 0]
    assert cola["train"]["sentence"][1] == "They drank the pub."
    assert cola["test"]["sentence"] == ["Bill whistled past the house."]
    assert cola["test"]["label"].tolist() == [-1]
    mnli = data.load_task("mnli", tmp_path)
    assert mnli["train"]["label"].tolist() == [1, 0]  # neutral=1, entailment=0 as on the hub
    assert mnli["train"]["premise"][0] == 'Conceptually "cream" skimming'  # quotes kept
    assert mnli["validation_matched"]["label"].tolist() == [2]  # gold_label, not label1
    assert "test_matched" not in mnli
    mrpc = data.load_task("mrpc", tmp_path)
    assert mrpc["train"]["sentence1"] == ["Amrozi accused his brother"]
    assert mrpc["train"]["label"].tolist() == [1]
    assert data.load_task("qnli", tmp_path)["train"]["label"].tolist() == [1, 0]
    qqp = data.load_task("qqp", tmp_path)["train"]
    assert qqp["question1"] == ["How?", "Why?"] and qqp["label"].tolist() == [1, 0]
    # Outside QQP a short row is an error naming the file and line.
    _write(tmp_path / "QNLI" / "dev.tsv", ["index\tquestion\tsentence\tlabel", "0\tWhy?"])
    with pytest.raises(data.GlueDataError, match=r"dev.tsv:2: expected at least 4"):
        data.load_task("qnli", tmp_path)
    _write(tmp_path / "QNLI" / "dev.tsv", ["index\tquestion\tsentence\tlabel",
                                           "0\tWhy?\tBecause.\tmaybe"])
    with pytest.raises(data.GlueDataError, match="bad qnli label 'maybe'.*not_entailment"):
        data.load_task("qnli", tmp_path)


def test_labels_outside_the_label_set_name_file_and_row(tmp_path):
    root = synthetic.write_synthetic_glue(tmp_path / "t", "tsv", SIZES, tasks=["sst2", "stsb"])
    train = root / "SST-2" / "train.tsv"
    lines = train.read_text().splitlines()
    lines[3] = lines[3].rsplit("\t", 1)[0] + "\t7"  # line 4 of the file
    _write(train, lines)
    with pytest.raises(data.GlueDataError, match=rf"{train}:4: sst2 label '7' is outside its label set; "
                       r"expected the class ids 0 \(negative\), 1 \(positive\)"):
        data.load_task("sst2", root)
    dev = root / "STS-B" / "dev.tsv"
    lines = dev.read_text().splitlines()
    lines[2] = lines[2].rsplit("\t", 1)[0] + "\tnan"
    _write(dev, lines)
    with pytest.raises(data.GlueDataError, match=rf"{dev}:3: stsb label 'nan' is outside its label set"):
        data.load_task("stsb", root)

    import pyarrow as pa
    import pyarrow.parquet as pq

    hub = synthetic.write_synthetic_glue(tmp_path / "h", "hub", SIZES, tasks=["mnli"])
    path = hub / "mnli" / "validation_matched-00000-of-00001.parquet"
    table = pq.read_table(path)
    labels = table.column("label").to_pylist()
    labels[5], labels[7] = 3, -1  # -1 means unlabelled: in a test split only
    pq.write_table(table.set_column(table.column_names.index("label"), "label", pa.array(labels)), path)
    with pytest.raises(data.GlueDataError, match=rf"{path}, row 5 \(idx 5\): mnli label 3 is outside its label "
                       r"set \(and 1 more rows\); expected the class ids 0 \(entailment\), 1 \(neutral\), "
                       r"2 \(contradiction\)"):
        data.load_task("mnli", hub)
    assert (data.load_task("mnli", hub, splits=["test_matched"])["test_matched"]["label"] == -1).all()


def test_invalid_utf8_names_file_line_and_column(tmp_path):
    root = synthetic.write_synthetic_glue(tmp_path, "tsv", SIZES, tasks=["cola"])
    path = root / "CoLA" / "train.tsv"
    raw = path.read_bytes().split(b"\n")
    raw[2] = raw[2][:5] + b"\xff" + raw[2][5:]
    path.write_bytes(b"\n".join(raw))
    with pytest.raises(data.GlueDataError, match=rf"{path}:3: invalid UTF-8 \(byte 0xff at column 6\); GLUE "
                       "files are UTF-8"):
        data.load_task("cola", root)


def test_missing_files_name_the_expected_ones(tmp_path):
    with pytest.raises(data.GlueDataError, match=r"rte/train-00000-of-00001.parquet.*RTE/train"):
        data.load_task("rte", tmp_path)
    root = synthetic.write_synthetic_glue(tmp_path / "h", "hub", SIZES, tasks=["mnli"])
    (root / "mnli" / "validation_mismatched-00000-of-00001.parquet").unlink()
    with pytest.raises(data.GlueDataError,
                       match="missing files: .*mnli/validation_mismatched-00000-of-00001"):
        data.load_task("mnli", root)
    root = synthetic.write_synthetic_glue(tmp_path / "t", "tsv", SIZES, tasks=["mnli"])
    (root / "MNLI" / "dev_matched.tsv").unlink()
    with pytest.raises(data.GlueDataError, match=r"missing files: .*MNLI/dev_matched.tsv"):
        data.load_task("mnli", root)
    with pytest.raises(data.GlueDataError, match="not a directory"):
        data.load_task("rte", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no split"):
        data.load_task("rte", root, splits=["validation_matched"])


def test_offline_hub_points_at_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.time()
    with pytest.raises(data.GlueDataError, match=r"nyu-mll/glue.*--data_dir") as err:
        data.load_task("rte", None, cache_dir=str(tmp_path))
    assert time.time() - start < 30
    assert "RTE/train.tsv" in str(err.value) and err.value.__cause__ is not None


# ---------------------------------------------------------------- tokenisation

def _segments(tok, ids, mask):
    """Token lists of segment A and B read off one encoded row."""
    toks = tok.convert_ids_to_tokens(ids[: int(mask.sum())].tolist())
    assert toks[0] == "[CLS]" and toks[-1] == "[SEP]"
    first_sep = toks.index("[SEP]")
    return toks[1:first_sep], toks[first_sep + 1:-1]


@pytest.mark.parametrize("name", ["mnli", "stsb", "cola"])
def test_tokenize_task(glue_dirs, tokenizer, name):
    task = tasks.get_task(name)
    split = data.load_task(name, glue_dirs["tsv"])["train"]
    enc = data.tokenize_task(split, name, tokenizer, max_length=128, batch_size=7)
    n = len(split["idx"])
    for k in ("input_ids", "attention_mask", "token_type_ids"):
        assert enc[k].shape == (n, 128) and enc[k].dtype == np.int32
    assert enc["labels"].dtype == (np.float32 if task.is_regression else np.int32)
    np.testing.assert_allclose(enc["labels"], split["label"])
    mask = enc["attention_mask"]
    # Padding: mask is a prefix of ones; padded positions hold [PAD] and type 0.
    lengths = mask.sum(1)
    assert np.all(mask == (np.arange(128)[None] < lengths[:, None]))
    assert np.all(enc["input_ids"][mask == 0] == tokenizer.pad_token_id)
    assert np.all(enc["token_type_ids"][mask == 0] == 0)
    for i in range(n):
        a, b = _segments(tokenizer, enc["input_ids"][i], mask[i])
        ref = [tokenizer.tokenize(split[c][i]) for c in task.text_columns]
        types = enc["token_type_ids"][i, : lengths[i]]
        if task.is_pair:
            assert np.all(types[: len(a) + 2] == 0) and np.all(types[len(a) + 2:] == 1)
            if len(ref[0]) + len(ref[1]) + 3 <= 128:
                assert (a, b) == (ref[0], ref[1])
            else:  # longest_first trims the longer text only, down to the budget
                assert lengths[i] == 128 and b == ref[1] and a == ref[0][: len(a)]
        else:
            assert np.all(types == 0) and b == []
            assert a == ref[0][: 126]
    # Edge rows from synthetic.py: 0 unicode, 1 empty (last text), 2 over-long.
    assert lengths[2] == 128
    a, b = _segments(tokenizer, enc["input_ids"][1], mask[1])
    assert (b if task.is_pair else a) == []
    unicode_ids = enc["input_ids"][0, : lengths[0]]
    assert np.sum(unicode_ids == tokenizer.unk_token_id) < lengths[0] - 2


def test_tokenize_unicode_empty_and_long_pairs(tokenizer):
    long = " ".join(["garden"] * 400)
    ds = {"sentence1": ["", "café 東京 🙂", long, ""], "sentence2": ["", "naïve", "river", long],
          "label": np.array([0, 1, 0, 1]), "idx": np.arange(4)}
    enc = data.tokenize_task(ds, "rte", tokenizer, max_length=16)
    assert enc["input_ids"].shape == (4, 16)
    assert tokenizer.convert_ids_to_tokens(enc["input_ids"][0, :3].tolist()) == [
        "[CLS]", "[SEP]", "[SEP]"]
    assert enc["attention_mask"][0].sum() == 3
    assert enc["attention_mask"][2].sum() == 16 and enc["attention_mask"][3].sum() == 16
    a, b = _segments(tokenizer, enc["input_ids"][2], enc["attention_mask"][2])
    assert b == tokenizer.tokenize("river") and len(a) == 16 - 3 - len(b)
    a, b = _segments(tokenizer, enc["input_ids"][3], enc["attention_mask"][3])
    assert a == [] and len(b) == 13
    assert enc["labels"].tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="lacks text columns"):
        data.tokenize_task({"sentence": ["x"]}, "rte", tokenizer)


@pytest.mark.parametrize("name", tasks.TASK_NAMES)
def test_synthetic_labels_follow_the_documented_rule(name):
    task = tasks.get_task(name)
    ds = synthetic.generate_split(task, "train", 60, seed=3)
    if not task.is_pair:
        has_cue = [any(c in s.split() for c in synthetic.CUE_WORDS) for s in ds["sentence"]]
        np.testing.assert_array_equal(ds["label"], np.array(has_cue, dtype=int))
        return
    a_col, b_col = task.text_columns
    share = np.array([len([w for w in b.split() if w in set(a.split())]) / max(len(b.split()), 1)
                      for a, b in zip(ds[a_col], ds[b_col])])
    if task.is_regression:
        np.testing.assert_allclose(ds["label"], 5 * share, atol=1e-3)
        assert ds["label"].min() >= 0 and ds["label"].max() <= 5
    elif task.num_labels == 3:
        assert np.all(share[ds["label"] == 0] == 1.0) and np.all(share[ds["label"] == 2] == 0)
        assert np.all((share[ds["label"] == 1] > 0) & (share[ds["label"] == 1] < 1))
    else:
        agree = ds["label"] == (0 if task.label_names[0] == "entailment" else 1)
        assert np.all(share[agree] == 1.0) and np.all(share[~agree] == 0.0)
        assert 10 < agree.sum() < 50  # both classes well represented
