"""Fashion-Gen-like product texts for the demo catalog, and the words that name visible regions.

A description reads like Fashion-Gen's ("Short sleeve cotton jersey t-shirt in red. Striped pattern
throughout. Crewneck collar. Patch pocket at chest. Tonal stitching."): a lead sentence, then the
pattern, sleeve, neckline and detail sentences in a seeded order, then a few fillers. Templates vary
so texts differ in structure; some words are accented latin-1 ("crêpe", "appliqué").
"""

from __future__ import annotations

import re

import numpy as np

from kaleido.data import fashiongen
from kaleido.demo import garments

MATERIALS: dict[str, tuple[tuple[str, str], ...]] = {  # garment -> (material, composition)
    "t-shirt": (("cotton jersey", "100% cotton"), ("organic cotton", "100% organic cotton"),
                ("slub jersey", "95% cotton, 5% elastane")),
    "shirt": (("cotton poplin", "100% cotton"), ("oxford cotton", "100% cotton"),
              ("linen", "100% linen"), ("crêpe de chine", "100% silk")),
    "tank top": (("ribbed cotton", "100% cotton"), ("lamé", "70% viscose, 30% metallic fibre")),
    "polo": (("cotton piqué", "100% cotton"), ("jersey", "95% cotton, 5% elastane")),
    "sweater": (("wool", "100% wool"), ("cashmere", "100% cashmere"),
                ("cotton knit", "100% cotton")),
    "hoodie": (("french terry", "100% cotton"), ("cotton fleece", "80% cotton, 20% polyester")),
    "cardigan": (("wool", "100% wool"), ("mohair-blend knit", "60% mohair, 40% polyamide")),
    "mini dress": (("crêpe", "100% polyester"), ("silk", "100% silk"),
                   ("lamé", "70% viscose, 30% metallic fibre"), ("cotton poplin", "100% cotton")),
    "maxi dress": (("crêpe", "100% polyester"), ("silk", "100% silk"),
                   ("jersey", "95% viscose, 5% elastane")),
    "trousers": (("wool twill", "100% wool"), ("cotton twill", "98% cotton, 2% elastane"),
                 ("crêpe", "100% polyester")),
    "jeans": (("denim", "100% cotton"), ("stretch denim", "98% cotton, 2% elastane")),
    "shorts": (("cotton twill", "100% cotton"), ("linen", "100% linen"), ("denim", "100% cotton")),
    "mini skirt": (("crêpe", "100% polyester"), ("wool", "100% wool"), ("denim", "100% cotton")),
    "midi skirt": (("crêpe", "100% polyester"), ("satin", "100% polyester"), ("wool", "100% wool")),
    "jacket": (("nylon", "100% nylon"), ("denim", "100% cotton"),
               ("technical twill", "100% polyester")),
    "coat": (("wool", "100% wool"), ("wool-cashmere", "90% wool, 10% cashmere"),
             ("cotton gabardine", "100% cotton")),
    "blazer": (("wool", "100% wool"), ("linen", "100% linen"), ("crêpe", "100% polyester")),
    "tote bag": (("canvas", "100% cotton"), ("grained leather", "Leather"),
                 ("nylon", "100% nylon")),
    "backpack": (("nylon", "100% nylon"), ("canvas", "100% cotton")),
    "shoulder bag": (("leather", "Leather"), ("suede", "Suede")),
    "sneakers": (("canvas", "Textile, rubber"), ("leather", "Leather, rubber"),
                 ("suede", "Suede, rubber")),
    "boots": (("leather", "Leather"), ("suede", "Suede")),
    "cap": (("cotton twill", "100% cotton"), ("wool", "100% wool")),
    "beanie": (("rib knit wool", "100% wool"), ("cashmere", "100% cashmere")),
    "scarf": (("wool", "100% wool"), ("cashmere", "100% cashmere"), ("silk", "100% silk")),
}
BRANDS = ("Velmora", "Atelier Noé", "Kestrel Row", "Maison Ardène", "Halvard Studio", "Orrin Vale",
          "Sablon Works", "Brisé", "Nordhal", "Quillon", "Tessaline", "Marlowe Quay")
SEASONS = ("SS2016", "FW2016", "SS2017", "FW2017", "SS2018", "FW2018")
DEPARTMENTS = {"BAGS": "BAGS", "SHOES": "SHOES", "HATS": "ACCESSORIES", "SCARVES": "ACCESSORIES"}
WOMENSWEAR = ("DRESSES", "SKIRTS")
PRICE_RANGES = {"TOPS": (90, 450), "SWEATERS": (150, 900), "DRESSES": (200, 1500),
                "PANTS": (150, 700), "SKIRTS": (150, 800), "JACKETS & COATS": (400, 3000),
                "BAGS": (250, 2500), "SHOES": (200, 1200), "HATS": (50, 300),
                "SCARVES": (80, 600)}

SLEEVE_ADJECTIVES = {"short": "short sleeve", "long": "long sleeve", "sleeveless": "sleeveless"}
SLEEVE_SENTENCES = {"short": ("Short sleeves.", "Short sleeves with tonal stitching."),
                    "long": ("Long sleeves.", "Long sleeves with rib knit cuffs."),
                    "sleeveless": ("Sleeveless.",)}
NECKLINE_SENTENCES = {
    "crew": ("Rib knit crewneck collar.", "Crew neck.", "Crewneck collar."),
    "v-neck": ("V-neck collar.", "Rib knit v-neck collar.", "V-neck."),
    "collar": ("Spread collar.", "Point collar.", "Classic collar."),
    "hooded": ("Hooded.", "Lined hood.", "Fixed hood."),
    "lapel": ("Notched lapel collar.", "Notched lapels.", "Peaked lapels."),
}
PATTERN_ADJECTIVES = {"striped": "striped", "polka-dot": "polka-dot", "checked": "checked",
                      "zigzag": "zigzag", "floral": "floral"}
PATTERN_SENTENCES = {
    "solid": ("", "", "Solid colourway."),
    "striped": ("Striped pattern throughout.", "{Secondary} stripes throughout.",
                "Horizontal stripes in {secondary}."),
    "polka-dot": ("Polka-dot pattern throughout.", "{Secondary} polka-dots throughout.",
                  "Polka-dot print in {secondary}."),
    "checked": ("Check pattern throughout.", "Gingham check in {secondary}.",
                "Checked pattern in {secondary} throughout."),
    "zigzag": ("Zigzag pattern throughout.", "Chevron pattern in {secondary}.",
               "{Secondary} zigzag stripes throughout."),
    "floral": ("Floral print throughout.", "Floral pattern in {secondary}.",
               "Printed {secondary} flowers throughout."),
}
DETAIL_SENTENCES = {
    "chest_pocket": ("Patch pocket at chest.", "Chest pocket."),
    "hip_pockets": ("Flap pockets at waist.", "Flap pockets at front."),
    "kangaroo_pocket": ("Kangaroo pocket.", "Pouch pocket at front."),
    "front_pockets": ("Slant pockets at front.", "Side pockets at front."),
    "front_pocket": ("Patch pocket at front.", "Exterior pocket at front."),
    "front_buttons": ("Button closure at front.", "Tonal buttons at front.",
                      "Horn buttons at front."),
    "placket_buttons": ("Button placket at collar.", "Buttoned placket with tonal buttons."),
    "waist_button": ("Button closure at waist.",),
    "crown_button": ("Button at crown.", "Tonal button at crown."),
    "front_zip": ("Zip closure at front.", "Two-way zip closure at front."),
    "fly_zip": ("Zip fly.", "Zip fly with tonal stitching."),
    "back_zip": ("Zip closure at back.", "Concealed zip at back."),
    "top_zip": ("Zip closure at top.", "Zip fastening at top."),
    "side_zip": ("Zip closure at inner side.", "Side zip closure."),
    "back_zip_pocket": ("Zip pocket at back.",),
    "chest_logo": ("Logo embroidered at chest.", "Logo appliqué at chest."),
    "centre_logo": ("Logo printed at front.", "Logo appliqué at front."),
    "front_logo": ("Logo patch at front.", "Logo appliqué at front."),
    "side_logo": ("Logo at outer side.", "Logo appliqué at side."),
    "flap_logo": ("Logo plaque at flap.", "Logo hardware at flap."),
    "corner_logo": ("Logo patch at corner.", "Logo appliqué at corner."),
    "waist_belt": ("Belt at waist.", "Detachable belt at waist.", "Belt with buckle at waist."),
    "laces": ("Lace-up closure.", "Tonal laces."),
    "fringe": ("Fringed edges.", "Fringe at ends."),
}
NAME_DETAILS = {"chest_logo": "logo", "centre_logo": "logo", "front_logo": "logo",
                "side_logo": "logo", "flap_logo": "logo", "corner_logo": "logo",
                "chest_pocket": "pocket", "front_pocket": "pocket", "fringe": "fringed",
                "waist_belt": "belted"}
FILLERS = {  # department -> groups of alternatives; at most one sentence per group
    "CLOTHING": (("Regular fit.", "Relaxed fit.", "Slim fit."), ("Unlined.", "Fully lined."),
                 ("Tonal stitching.", "Contrast stitching.")),
    "BAGS": (("Twin carry handles.", "Single carry handle."), ("Textile lining.", "Suede lining."),
             ("Tonal hardware.", "Gold-tone hardware.")),
    "SHOES": (("Round toe.", "Almond toe."), ("Rubber sole.", "Treaded rubber sole."),
              ("Tonal stitching.",)),
    "ACCESSORIES": (("Tonal stitching.",), ("Made in Italy.", "Made in Portugal."),
                    ("One size.",)),
}

# Words of the text that name a visible region: kind and the region of garments.render they name.
PATTERN_WORDS = {"solid": ("solid",), "striped": ("striped", "stripes"),
                 "polka-dot": ("polka-dot", "polka-dots", "print"),
                 "checked": ("check", "checked", "gingham"), "zigzag": ("zigzag", "chevron"),
                 "floral": ("floral", "print", "flowers")}
SLEEVE_WORDS = ("sleeve", "sleeves")
NECKLINE_WORDS = {"crew": ("crewneck", "crew", "neck", "collar"), "v-neck": ("v-neck", "collar"),
                  "collar": ("collar",), "hooded": ("hooded", "hood"),
                  "lapel": ("lapel", "lapels", "collar")}
DETAIL_WORDS = {"pocket": ("pocket", "pockets"), "button": ("button", "buttons"),
                "zip": ("zip",), "logo": ("logo",), "belt": ("belt", "belted"),
                "laces": ("laces", "lace-up"), "fringe": ("fringe", "fringed"),
                "zip pocket": ("zip", "pocket")}
DETAIL_KIND = {
    "chest_pocket": "pocket", "hip_pockets": "pocket", "kangaroo_pocket": "pocket",
    "front_pockets": "pocket", "front_pocket": "pocket", "front_buttons": "button",
    "placket_buttons": "button", "waist_button": "button", "crown_button": "button",
    "front_zip": "zip", "fly_zip": "zip", "back_zip": "zip", "top_zip": "zip", "side_zip": "zip",
    "back_zip_pocket": "zip pocket", "chest_logo": "logo", "centre_logo": "logo",
    "front_logo": "logo", "side_logo": "logo", "flap_logo": "logo", "corner_logo": "logo",
    "waist_belt": "belt", "laces": "laces", "fringe": "fringe",
}
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


def tokens(text: str) -> list[str]:
  """Lower-cased words; hyphenated compounds ("t-shirt", "v-neck") stay one word."""
  return _WORD.findall(text.lower())


def attribute_words(style: garments.Style) -> list[tuple[str, str, str]]:
  """(word, kind, region) of every word that may name a region of the product's images.

  Regions are those of `garments.render` plus "product" (the whole foreground).
  """
  words = [(style.colour, "colour", "body")]
  if style.secondary:
    words.append((style.secondary, "colour", "body"))
  words += [(w, "pattern", "body") for w in PATTERN_WORDS[style.pattern]]
  if style.sleeve:
    region = "armhole" if style.sleeve == "sleeveless" else "sleeve"
    own = ("sleeveless",) if style.sleeve == "sleeveless" else (style.sleeve,) + SLEEVE_WORDS
    words += [(w, "sleeve", region) for w in own]
  if style.neckline:
    words += [(w, "neckline", "neckline") for w in NECKLINE_WORDS[style.neckline]]
  for key in style.details:
    words += [(w, "detail", key) for w in DETAIL_WORDS[DETAIL_KIND[key]]]
  garment = garments.GARMENTS_BY_KEY[style.garment]
  nouns = dict.fromkeys(w for noun in garment.nouns for w in tokens(noun))
  return words + [(w, "category", "product") for w in nouns]


def _capitalise(text: str) -> str:
  return text[:1].upper() + text[1:]


def _lead(style: garments.Style, material: str, noun: str, department: str,
          rng: np.random.Generator) -> tuple[str, bool]:
  """The first sentence, and whether it already names the sleeves."""
  if style.sleeve and rng.random() < 0.6:
    lead = f"{SLEEVE_ADJECTIVES[style.sleeve]} {material} {noun} in {style.colour}."
    return _capitalise(lead), True
  templates = ["{material} {noun} in {colour}.", "{colour} {material} {noun}.",
               "{material} {noun} in {colour} tone."]
  if department == "CLOTHING":
    templates.append("relaxed-fit {material} {noun} in {colour}.")
  if style.pattern != "solid":
    templates.append(f"{PATTERN_ADJECTIVES[style.pattern]} {{material}} {{noun}} in {{colour}}.")
  template = garments.pick(rng, templates)
  return _capitalise(template.format(material=material, noun=noun, colour=style.colour)), False


def _description(style: garments.Style, department: str, material: str, noun: str,
                 rng: np.random.Generator) -> str:
  """Lead sentence, attribute sentences in a random order, then fillers."""
  lead, named_sleeves = _lead(style, material, noun, department, rng)
  pattern = garments.pick(rng, PATTERN_SENTENCES[style.pattern]).format(
      secondary=style.secondary, Secondary=_capitalise(style.secondary))
  body = [pattern] if pattern else []
  if style.sleeve and not named_sleeves:
    body.append(garments.pick(rng, SLEEVE_SENTENCES[style.sleeve]))
  if style.neckline:
    body.append(garments.pick(rng, NECKLINE_SENTENCES[style.neckline]))
  body += [garments.pick(rng, DETAIL_SENTENCES[key]) for key in style.details]
  order = rng.permutation(len(body))
  groups = FILLERS[department]
  chosen = sorted(rng.choice(len(groups), int(rng.integers(0, 3)), replace=False))
  extra = [garments.pick(rng, groups[i]) for i in chosen]
  return " ".join([lead] + [body[i] for i in order] + extra)


def _name(style: garments.Style, noun: str, rng: np.random.Generator) -> str:
  """A short product title, in sentence or title case."""
  pattern = PATTERN_ADJECTIVES.get(style.pattern, "")
  detail = next((NAME_DETAILS[k] for k in style.details if k in NAME_DETAILS), "")
  sleeve = SLEEVE_ADJECTIVES.get(style.sleeve, "")
  options = [[style.colour, pattern, sleeve, noun], [style.colour, detail, noun],
             [pattern, style.colour, noun]]
  name = " ".join(w for w in garments.pick(rng, options) if w)
  if rng.random() < 0.5:
    return " ".join(_capitalise(w) for w in name.split())
  return _capitalise(name)


def describe(style: garments.Style, rng: np.random.Generator) -> fashiongen.ProductText:
  """Name, description and the other Fashion-Gen text fields of a product."""
  garment = garments.GARMENTS_BY_KEY[style.garment]
  material, composition = garments.pick(rng, MATERIALS[style.garment])
  noun = garments.pick(rng, garment.nouns)
  department = DEPARTMENTS.get(garment.category, "CLOTHING")
  low, high = PRICE_RANGES[garment.category]
  return fashiongen.ProductText(
      name=_name(style, noun, rng),
      description=_description(style, department, material, noun, rng),
      brand=garments.pick(rng, BRANDS),
      gender="WOMEN" if garment.category in WOMENSWEAR else garments.pick(rng, ("MEN", "WOMEN")),
      season=garments.pick(rng, SEASONS),
      composition=composition,
      department=department,
      msrp_usd=float(5 * round(rng.uniform(low, high) / 5)))
