package features

import "unicode"

// Blank reports whether text holds no characters but whitespace (unicode.IsSpace),
// control characters (Cc) and invisible format characters (Cf: zero-width space, byte
// order mark, soft hyphen). A BERT-style tokenizer drops all of these, so a blank text
// encodes to [CLS] [SEP] exactly as the empty text does, and everything that refuses
// empty texts (extract, predict, the Model API, serve) refuses blank ones with them.
// Invalid UTF-8 is not blank.
func Blank(text string) bool {
	for _, r := range text {
		if !unicode.IsSpace(r) && !unicode.Is(unicode.Cc, r) && !unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}
