"""Kaleido-BERT's reported Fashion-Gen results (paper Tables 2 and 3), in the paper's units.

Retrieval and accuracy in percent, macro-F as a fraction, captioning x100. Only numbers printed in
the paper are here (it gives no BLEU-1..3). The paper does not say which macro-F it reports; the
original release computed it over all class ids, so it sits beside "macro_f1_all".
"""

KALEIDO_BERT = {
    "itr": {"R@1": 27.99, "R@5": 60.09, "R@10": 68.37},
    "tir": {"R@1": 33.88, "R@5": 60.60, "R@10": 68.59},
    "retrieval": {"SumR": 319.52},
    "category": {"accuracy": 95.07, "macro_f1_all": 0.714},
    "subcategory": {"accuracy": 88.07, "macro_f1_all": 0.636},
    "classification": {"SumCLS": 318.14},
    "caption": {"BLEU-4": 5.7, "METEOR": 12.8, "ROUGE-L": 32.9, "CIDEr": 32.6, "SumCAP": 84.0},
}
