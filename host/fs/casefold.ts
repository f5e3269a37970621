// Name matching in casefolded directories (ext4 +F, the casefold feature):
// names equal after Unicode normalisation and case folding match, as the
// kernel's utf8 "nfdicf" comparison does. Names that are not valid UTF-8 match
// byte for byte only (the kernel's non-strict mode).
//
// JavaScript has no case-fold primitive: upper- then lower-casing gives the
// full folding for nearly every character (ß -> ss, Kelvin sign -> k), and NFD
// normalisation matches the kernel's decomposition. Rare characters whose
// folding differs from this approximation may not match.

const strict = new TextDecoder("utf-8", { fatal: true });

export function casefoldKey(name: Uint8Array): string | null {
  let text: string;
  try {
    text = strict.decode(name);
  } catch {
    return null;
  }
  return text.normalize("NFD").toUpperCase().toLowerCase().normalize("NFD");
}
