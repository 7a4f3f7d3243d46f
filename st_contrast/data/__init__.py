"""st_contrast.data: see DESIGN.md. Public names are imported lazily from their modules."""

from __future__ import annotations

from st_contrast._lazy import lazy_exports

# public name -> module in this package; one line per name (each method's module is the source of truth)
_LAZY: dict[str, str] = {
    "cline_rewrites": "cline",
    "cline_dataset": "cline",
    "cline_examples": "cline",
    "read_fewrel_nyt": "relation",
    "read_semeval2010": "relation",
    "RelationInstance": "relation",
    "Bag": "relation",
    "mark_entities": "relation",
    "group_bags": "relation",
    "pseudo_bags": "relation",
    "split_bags": "relation",
    "relation_ids": "relation",
    "cil_dataset": "relation",
    "cil_examples": "relation",
    "load_clinc150": "clinc",
    "ClincData": "clinc",
    "DeCLUTRSpanSampler": "declutr",
    "declutr_dataset": "declutr",
    "declutr_input_examples": "declutr",
    "declutr_column_names": "declutr",
    "read_wikitext_articles": "declutr",
    "read_documents": "documents",
    "read_document_folder": "documents",
    "read_document_jsonl": "documents",
    "save_label_map": "labels",
    "load_label_map": "labels",
    "label_ids": "labels",
    "find_data_file": "paths",
    "data_dirs": "paths",
    "cache_dir": "paths",
    "read_sentences": "sentences",
    "sentence_dataset": "sentences",
    "unsupervised_examples": "sentences",
    "unsupervised_pairs": "sentences",
    "read_simcse_nli_csv": "nli",
    "snli_triplets": "nli",
    "nli_dataset": "nli",
    "nli_examples": "nli",
    "download_sts_benchmark": "download",
    "download_file": "download",
    "read_simcls_jsonl": "simcls",
    "read_records": "records",
    "Records": "records",
    "DataFormatError": "reading",
    "write_simcls_jsonl": "simcls",
    "realsumm_documents": "simcls",
    "documents_from_fairseq_generate": "simcls",
    "make_document": "simcls",
    "SimCLSDocument": "simcls",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
