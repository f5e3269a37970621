// Name matching in casefolded directories (ext4 +F, the casefold feature):
// names equal after Unicode normalisation and case folding match, as the
// kernel's utf8 "nfdicf" comparison does. Names that are not valid UTF-8 match
// byte for byte only (the kernel's non-strict mode).
//
// JavaScript has no case-fold primitive: upper- then lower-casing approximates
// it (Kelvin sign -> k, ß -> ss), with NFD normalisation as the kernel does.
// For ASCII and the common alphabets this is exact; for the rare characters
// where the kernel's utf8data folds differently (full vs simple folding), a
// lookup may match where the kernel would not, or the other way round.

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
