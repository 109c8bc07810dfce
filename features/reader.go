package features

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Format is the layout of a dataset file. The zero value, FormatAuto, picks the format
// from the file's extension.
type Format int

const (
	// FormatAuto: .csv is CSV, .tsv is TSV, .jsonl and .ndjson are JSONL, .txt is text
	// (case does not matter); standard input ("-") is CSV. Any other extension is an error.
	FormatAuto Format = iota
	// FormatCSV: RFC 4180 comma-separated values with a header line. Fields may be
	// quoted ("a ""b"", c"), and quoted fields may span lines. A quote inside an unquoted
	// field is an error (strict RFC 4180, so that a stray quote cannot silently swallow
	// the rows after it). CRLF line ends are accepted; blank lines are skipped.
	FormatCSV
	// FormatTSV: tab-separated values with a header line, split on every tab with no
	// quoting or escapes at all, as GLUE and most NLP corpora write them: quotes are
	// ordinary characters, and a field cannot contain a tab or a newline. CRLF line ends
	// are accepted; blank lines are skipped.
	FormatTSV
	// FormatJSONL: one JSON object per line (JSON Lines, NDJSON). The text must be a JSON
	// string; the label may be a string, a number (kept as written by the Reader: 3
	// gives "3", 1.0 gives "1.0"; Scan then compares all-numeric labels as numbers, see
	// CanonicalLabels), a boolean ("true", "false") or null (no label); with
	// ReaderOptions.LabelSep it may also be an array of labels (["card", "arrival"]).
	// Blank lines are skipped. Other keys are ignored.
	FormatJSONL
	// FormatText: plain text, one text per line, no header and no labels (so it cannot
	// be read with RequireLabel). The line end ("\n" or "\r\n") is not part of the
	// text; blank lines (only whitespace) are skipped, as in the other formats.
	FormatText
)

var formatNames = [...]string{FormatAuto: "auto", FormatCSV: "csv", FormatTSV: "tsv", FormatJSONL: "jsonl", FormatText: "text"}

// String returns the format's name: auto, csv, tsv, jsonl or text.
func (f Format) String() string {
	if f < 0 || int(f) >= len(formatNames) {
		return "Format(" + strconv.Itoa(int(f)) + ")"
	}
	return formatNames[f]
}

// ParseFormat parses a format name as a user writes it (a --format flag): auto (or the
// empty string), csv, tsv, jsonl or ndjson, text or txt, in any case.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return FormatAuto, nil
	case "csv":
		return FormatCSV, nil
	case "tsv":
		return FormatTSV, nil
	case "jsonl", "ndjson":
		return FormatJSONL, nil
	case "text", "txt":
		return FormatText, nil
	}
	return FormatAuto, errorf(ErrUnknownFormat, "format %q unknown; want one of auto, csv, tsv, jsonl, text", s)
}

// FormatOf returns the format of the file at path, from its extension (see FormatAuto).
func FormatOf(path string) (Format, error) {
	if path == "-" {
		return FormatCSV, nil
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return FormatCSV, nil
	case ".tsv":
		return FormatTSV, nil
	case ".jsonl", ".ndjson":
		return FormatJSONL, nil
	case ".txt":
		return FormatText, nil
	}
	return FormatAuto, errorf(ErrUnknownFormat,
		"cannot tell the format of %s from its extension; want .csv, .tsv, .jsonl, .ndjson or .txt, or name the format (csv, tsv, jsonl, text)", path)
}

// ReaderOptions say how to read a dataset. The zero value reads a file whose format the
// extension gives, with its text in column "text" and optional labels in column "label".
type ReaderOptions struct {
	// Format of the data. Default FormatAuto (from the extension; stdin is CSV).
	Format Format
	// TextCol is the column (CSV, TSV header) or key (JSONL) holding the text.
	// Default "text". It must exist.
	TextCol string
	// LabelCol is the column or key holding the label. Default "label". Labels are
	// optional unless RequireLabel is set: without the column every row has
	// HasLabel false.
	LabelCol string
	// RequireLabel makes a missing label column an error (ErrMissingColumn): set it when
	// the user named the label column, or when labels are needed (training). For JSONL,
	// every line must then have the key (a null value still means "no label").
	RequireLabel bool
	// Limit stops reading after this many rows. Default 0: all rows.
	Limit int
	// LabelSep, when not empty, makes the label column multi-label: the field holds
	// several labels separated by LabelSep ("card|arrival" with LabelSep "|"), and
	// Row.Labels holds them. Whitespace around each label is trimmed and a label
	// repeated within a field counts once. A field that is empty (or only whitespace)
	// means no labels; an empty label between separators ("a||b", "a|", "|a") is an
	// error (ErrMalformedRow) naming the row, so that a stray separator cannot
	// silently drop or invent a label. In JSONL the label may also be an array of
	// labels, taken as they are (not split; an element holding LabelSep is an error).
	// Default "": one label per field.
	LabelSep string
	// MaxLineBytes bounds the length of one row in bytes, its line end not counted: a
	// line of TSV or JSONL, a CSV record (all its lines, when a quoted field spans
	// several). A longer row is an
	// error (ErrLineTooLong) naming it, met after reading at most MaxLineBytes plus
	// 64 KiB of it, so that an input without line ends (a binary file, /dev/zero)
	// cannot exhaust memory. Default DefaultMaxLineBytes (4 MiB); negative: no bound.
	MaxLineBytes int
	// Name is the name errors give the data. Default: the path ("standard input" for
	// "-"). FormatAuto takes the format from Name's extension when it is set.
	Name string
}

func (o ReaderOptions) withDefaults() ReaderOptions {
	if o.TextCol == "" {
		o.TextCol = "text"
	}
	if o.LabelCol == "" {
		o.LabelCol = "label"
	}
	if o.MaxLineBytes == 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	return o
}

// Row is one data row.
type Row struct {
	// Index is the 0-based number of the row among the data rows: the header and blank
	// lines do not count. It is the row id stored with the features.
	Index int64
	// Text is the text field as written (after CSV unquoting or JSON unescaping). It may
	// be empty: the reader does not judge, the caller decides.
	Text string
	// Label is the label field, trimmed of surrounding whitespace (without LabelSep);
	// "" when HasLabel is false.
	Label string
	// HasLabel reports a label: false when the label column is absent, the field is
	// empty or only whitespace (a blank label is a missing one), or the JSON value is
	// null. With ReaderOptions.LabelSep it reports a
	// non-empty label set.
	HasLabel bool
	// Labels is the row's label set when ReaderOptions.LabelSep is set: the labels of
	// the field in the order they first appear, each once, trimmed; empty when the row
	// has none. Nil without LabelSep. A fresh slice for every row.
	Labels []string
}

// Reader reads rows from a dataset, like bufio.Scanner:
//
//	r, err := features.Open(path, opts)
//	if err != nil { ... }
//	defer r.Close()
//	for r.Next() {
//		row := r.Row()
//	}
//	if err := r.Err(); err != nil { ... }
//
// Errors name the file, the line (1-based, as an editor counts it, header included) and
// the row (0-based, as Row.Index). Every text and label is checked to be valid UTF-8.
// A Reader is not safe for concurrent use.
type Reader struct {
	name   string
	format Format
	opts   ReaderOptions
	closer io.Closer // nil when the caller owns the source (stdin, NewReader)
	ctx    context.Context
	src    *source
	async  *asyncReader // reading a pipe or terminal: Reads that ctx can abandon
	br     *bufio.Reader
	cr     *csv.Reader // FormatCSV

	columns  []string // header, or the keys of the first JSONL object
	nfields  int      // CSV, TSV: fields per row
	textIdx  int      // CSV, TSV: column index of the text
	labelIdx int      // CSV, TSV: column index of the label; -1 if absent
	fields   []string // TSV: reused split buffer
	line     int      // TSV, JSONL: number of the last line read
	first    []byte   // JSONL: the first non-blank line, read by Open to learn the columns
	firstAt  int      // its line number

	row  Row
	n    int64 // rows returned so far
	err  error
	done bool
}

// Open opens the dataset at path ("-" reads standard input, which Close leaves open)
// and reads its header. A missing text column, or a missing label column when
// opts.RequireLabel is set, is reported here for CSV and TSV, and at the first line
// that lacks it for JSONL.
func Open(path string, opts ReaderOptions) (*Reader, error) {
	return OpenContext(context.Background(), path, opts)
}

// OpenContext is Open with a context: once ctx is done, opening (a FIFO waits for its
// writer) and reading stop at once, and Next returns false with Err wrapping ctx.Err().
// Standard input, FIFOs and devices are read through a goroutine, so that even a read
// blocked on an idle pipe gives way.
func OpenContext(ctx context.Context, path string, opts ReaderOptions) (*Reader, error) {
	return openTee(ctx, path, opts, nil)
}

// openTee opens path like OpenContext, copying every byte read to tee when it is set.
func openTee(ctx context.Context, path string, opts ReaderOptions, tee io.Writer) (*Reader, error) {
	name := opts.Name
	if name == "" {
		name = path
		if path == "-" {
			name = "standard input"
		}
	}
	if opts.Format == FormatAuto {
		from := path
		if opts.Name != "" {
			from = opts.Name
		}
		f, err := FormatOf(from)
		if err != nil {
			return nil, err
		}
		opts.Format = f
	}
	if path == "-" {
		return newReader(ctx, os.Stdin, name, opts, tee, true)
	}
	f, err := openInput(ctx, path)
	if err != nil {
		return nil, err
	}
	r, err := newReader(ctx, f, name, opts, tee, SinglePass(path))
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	r.closer = f
	return r, nil
}

// NewReader reads a dataset from src; name is used in error messages and, with
// FormatAuto, to pick the format from its extension. Close does not close src.
func NewReader(src io.Reader, name string, opts ReaderOptions) (*Reader, error) {
	if opts.Format == FormatAuto {
		f, err := FormatOf(name)
		if err != nil {
			return nil, err
		}
		opts.Format = f
	}
	if opts.Name != "" {
		name = opts.Name
	}
	return newReader(context.Background(), src, name, opts, nil, false)
}

// newReader reads src (through a goroutine when async, see asyncReader) and its header.
func newReader(ctx context.Context, src io.Reader, name string, opts ReaderOptions, tee io.Writer, async bool) (*Reader, error) {
	opts = opts.withDefaults()
	if opts.Format <= FormatAuto || opts.Format > FormatText {
		return nil, errorf(ErrUnknownFormat, "%s: format %v unknown; want one of csv, tsv, jsonl, text", name, opts.Format)
	}
	if opts.Format == FormatText && opts.RequireLabel {
		return nil, errorf(ErrMissingColumn, "%s: plain text (one text per line) has no labels; give labelled data as csv, tsv or jsonl", name)
	}
	r := &Reader{name: name, format: opts.Format, opts: opts, ctx: ctx, labelIdx: -1}
	if async {
		r.async = newAsyncReader(ctx, src)
		src = r.async
	}
	r.src = &source{ctx: ctx, r: src, tee: tee, max: int64(max(opts.MaxLineBytes, 0))}
	r.br = bufio.NewReaderSize(r.src, readBuf)
	hdr, err := r.readHeader()
	if err != nil {
		r.stopAsync()
		return nil, err
	}
	return hdr, nil
}

// stopAsync ends the goroutine of an asynchronous source.
func (r *Reader) stopAsync() {
	if r.async != nil {
		r.async.stop()
	}
}

// readHeader reads the header (CSV, TSV) or the first object (JSONL).
func (r *Reader) readHeader() (*Reader, error) {
	name := r.name
	// A UTF-8 byte order mark (Excel writes one) is not part of the first column's name.
	if b, err := r.br.Peek(3); err == nil && string(b) == "\ufeff" {
		r.br.Discard(3)
	}
	switch r.format {
	case FormatCSV:
		r.cr = csv.NewReader(r.br)
		r.cr.ReuseRecord = true
		hdr, err := r.cr.Read()
		if err != nil && err != io.EOF {
			return nil, r.csvError(err, nil)
		}
		if err := r.checkCSVRow(); err != nil {
			return nil, err
		}
		r.columns = slices.Clone(hdr)
	case FormatTSV:
		line, err := r.nextLine()
		if err != nil {
			return nil, err
		}
		if line != nil {
			r.columns = strings.Split(string(line), "\t")
		}
	case FormatJSONL:
		line, err := r.nextLine()
		if err != nil {
			return nil, err
		}
		if line != nil {
			r.first, r.firstAt = slices.Clone(line), r.line
			keys, err := objectKeys(line)
			if err != nil {
				return nil, errorf(ErrMalformedRow, "%s: line %d (row 0): not a JSON object: %w", name, r.line, err)
			}
			r.columns = keys
		}
		return r, nil
	case FormatText:
		r.columns = []string{r.opts.TextCol}
		return r, nil
	}
	if err := r.findColumns(); err != nil {
		return nil, err
	}
	return r, nil
}

// consumed is the number of bytes of the source the parser has taken.
func (r *Reader) consumed() int64 { return r.src.n - int64(r.br.Buffered()) }

// checkCSVRow checks the CSV record just read against the row bound, and starts the next.
func (r *Reader) checkCSVRow() error {
	end := r.consumed()
	if r.src.max > 0 && end-r.src.mark > r.src.max+2 { // its line end ("\r\n") not counted
		return r.tooLong(0, r.src.mark)
	}
	r.src.mark = end
	return nil
}

// tooLong reports a row longer than the bound; line is its line when known (else 0),
// at its byte offset in the input.
func (r *Reader) tooLong(line int, at int64) error {
	where := fmt.Sprintf("row %d", r.n)
	if r.format != FormatJSONL && r.columns == nil {
		where = "header"
	}
	if line > 0 {
		where = fmt.Sprintf("line %d (%s)", line, where)
	}
	return errorf(ErrLineTooLong, "%s: %s, from byte %d: longer than %d bytes without a line end; is it a text file? (raise the bound with --max-line-bytes, ReaderOptions.MaxLineBytes)",
		r.name, where, at, r.src.max)
}

// sourceError turns an error of the source into one naming the file and the row.
func (r *Reader) sourceError(err error, line int) error {
	switch {
	case errors.Is(err, errLineTooLong):
		return r.tooLong(line, r.src.mark)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("reading %s: stopped at row %d: %w", r.name, r.n, err)
	}
	return fmt.Errorf("reading %s: %w", r.name, err)
}

// findColumns locates the text and label columns in a CSV or TSV header.
func (r *Reader) findColumns() error {
	r.nfields = len(r.columns)
	var err error
	if r.textIdx, err = r.column(r.opts.TextCol); err != nil {
		return err
	}
	if r.textIdx < 0 {
		return r.missing("column", r.opts.TextCol, r.columns, 0)
	}
	if r.labelIdx, err = r.column(r.opts.LabelCol); err != nil {
		return err
	}
	if r.labelIdx < 0 && r.opts.RequireLabel {
		return r.missing("column", r.opts.LabelCol, r.columns, 0)
	}
	return nil
}

// column returns the index of the header column called name, or -1.
func (r *Reader) column(name string) (int, error) {
	i := slices.Index(r.columns, name)
	if i < 0 {
		return -1, nil
	}
	if j := slices.Index(r.columns[i+1:], name); j >= 0 {
		return -1, errorf(ErrDuplicateColumn, "column %q appears twice in %s (columns %d and %d); columns: %s",
			name, r.name, i+1, i+j+2, listColumns(r.columns))
	}
	return i, nil
}

// missing reports a column (CSV, TSV) or key (JSONL, at a line) that is not there.
func (r *Reader) missing(what, name string, found []string, line int) error {
	where := r.name
	if line > 0 {
		where = fmt.Sprintf("%s: line %d (row %d)", r.name, line, r.n)
		return errorf(ErrMissingColumn, "%s: no %s %q; keys: %s", where, what, name, listColumns(found))
	}
	return errorf(ErrMissingColumn, "%s %q not found in %s; %ss: %s", what, name, where, what, listColumns(found))
}

// listColumns joins column names for a message, quoting the ones that would otherwise
// be ambiguous (empty, surrounding spaces, commas, control characters).
func listColumns(cols []string) string {
	if len(cols) == 0 {
		return "(none)"
	}
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		if c == "" || c != strings.TrimSpace(c) || strings.ContainsAny(c, ",\"") ||
			strings.IndexFunc(c, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			c = strconv.Quote(c)
		}
		b.WriteString(c)
	}
	return b.String()
}

// Columns returns the header's column names (CSV, TSV) or the keys of the first object
// (JSONL), in file order, or the text column's name alone (text); nil for an empty CSV, TSV
// or JSONL file. The caller must not modify it.
func (r *Reader) Columns() []string { return r.columns }

// Next advances to the next row, which Row then returns. It returns false at the end of
// the data, after opts.Limit rows, or on an error, which Err then returns.
func (r *Reader) Next() bool {
	if r.done {
		return false
	}
	if r.opts.Limit > 0 && r.n >= int64(r.opts.Limit) {
		r.done = true
		return false
	}
	err := r.ctx.Err()
	if err != nil {
		err = r.sourceError(err, 0)
	} else {
		switch r.format {
		case FormatCSV:
			err = r.nextCSV()
		case FormatTSV:
			err = r.nextTSV()
		case FormatJSONL:
			err = r.nextJSONL()
		case FormatText:
			err = r.nextText()
		}
	}
	if err != nil {
		r.done = true
		r.stopAsync()
		if err != io.EOF {
			r.err = err
		}
		return false
	}
	r.row.Index = r.n
	r.n++
	return true
}

// Row returns the current row. Its strings stay valid after the next call to Next.
func (r *Reader) Row() Row { return r.row }

// Err returns the first error met, or nil at a clean end of the data.
func (r *Reader) Err() error { return r.err }

// Close closes the file that Open opened. It does not close standard input or the
// source given to NewReader.
func (r *Reader) Close() error {
	r.done = true
	r.stopAsync()
	if r.closer == nil {
		return nil
	}
	c := r.closer
	r.closer = nil
	if err := c.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", r.name, err)
	}
	return nil
}

func (r *Reader) nextCSV() error {
	rec, err := r.cr.Read()
	if err != nil {
		if err == io.EOF {
			return err
		}
		return r.csvError(err, rec)
	}
	if err := r.checkCSVRow(); err != nil {
		return err
	}
	line, _ := r.cr.FieldPos(0)
	return r.setFields(rec, line)
}

// csvError turns an encoding/csv error into one that names the file, line and row.
func (r *Reader) csvError(err error, rec []string) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return r.sourceError(err, 0)
	}
	if errors.Is(pe.Err, csv.ErrFieldCount) {
		return errorf(ErrMalformedRow, "%s: line %d (row %d): %d fields, want %d (columns: %s)",
			r.name, pe.StartLine, r.n, len(rec), r.nfields, listColumns(r.columns))
	}
	at := fmt.Sprintf("line %d (row %d)", pe.StartLine, r.n)
	if r.columns == nil {
		at = fmt.Sprintf("line %d (header)", pe.StartLine)
	}
	what := pe.Err.Error()
	if errors.Is(pe.Err, csv.ErrBareQuote) {
		what = `a quote (") inside an unquoted field; quote the field and double the quote`
	}
	return errorf(ErrMalformedRow, "%s: %s: %s (at line %d, column %d)", r.name, at, what, pe.Line, pe.Column)
}

func (r *Reader) nextTSV() error {
	line, err := r.nextLine()
	if err != nil {
		return err
	}
	if line == nil {
		return io.EOF
	}
	// Split on every tab into the reused buffer. One string per row holds all fields.
	s := string(line)
	r.fields = r.fields[:0]
	for {
		i := strings.IndexByte(s, '\t')
		if i < 0 {
			r.fields = append(r.fields, s)
			break
		}
		r.fields = append(r.fields, s[:i])
		s = s[i+1:]
	}
	if len(r.fields) != r.nfields {
		return errorf(ErrMalformedRow, "%s: line %d (row %d): %d fields, want %d (columns: %s)",
			r.name, r.line, r.n, len(r.fields), r.nfields, listColumns(r.columns))
	}
	return r.setFields(r.fields, r.line)
}

// nextText reads one line of plain text as the row's text (no label).
func (r *Reader) nextText() error {
	line, err := r.nextLine()
	if err != nil {
		return err
	}
	if line == nil {
		return io.EOF
	}
	if !utf8.Valid(line) {
		return r.badUTF8("text", string(line), r.line)
	}
	r.row.Text, r.row.Label, r.row.HasLabel, r.row.Labels = string(line), "", false, nil
	return nil
}

// setFields fills r.row from the fields of a CSV or TSV row.
func (r *Reader) setFields(rec []string, line int) error {
	text := rec[r.textIdx]
	if !utf8.ValidString(text) {
		return r.badUTF8("text", text, line)
	}
	r.row.Text = text
	r.row.Label, r.row.HasLabel = "", false
	if r.labelIdx >= 0 {
		label := rec[r.labelIdx]
		if !utf8.ValidString(label) {
			return r.badUTF8("label", label, line)
		}
		if r.opts.LabelSep == "" {
			label = strings.TrimSpace(label)
		}
		r.row.Label, r.row.HasLabel = label, label != ""
	}
	return r.splitLabels(line)
}

// splitLabels fills r.row.Labels from r.row.Label when the reader is multi-label
// (opts.LabelSep); line is the row's line, for errors.
func (r *Reader) splitLabels(line int) error {
	r.row.Labels = nil
	if r.opts.LabelSep == "" {
		return nil
	}
	labels, err := splitLabels(r.row.Label, r.opts.LabelSep)
	if err != nil {
		return errorf(ErrMalformedRow, "%s: line %d (row %d): label %q: %w", r.name, line, r.n, clip([]byte(r.row.Label)), err)
	}
	r.row.Labels, r.row.HasLabel = labels, len(labels) > 0
	return nil
}

// splitLabels splits a multi-label field on sep (see ReaderOptions.LabelSep): labels
// trimmed, each once, in order of first appearance; an empty or all-space field gives
// an empty (non-nil) set.
func splitLabels(field, sep string) ([]string, error) {
	labels := []string{}
	if strings.TrimSpace(field) == "" {
		return labels, nil
	}
	for i, l := range strings.Split(field, sep) {
		l = strings.TrimSpace(l)
		if l == "" {
			return nil, fmt.Errorf("empty label at position %d between separators %q; remove the stray separator", i+1, sep)
		}
		if !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}
	return labels, nil
}

func (r *Reader) badUTF8(what, s string, line int) error {
	i := 0
	for i < len(s) {
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	return errorf(ErrInvalidUTF8, "%s: line %d (row %d): %s is not valid UTF-8 (byte 0x%02x at offset %d); convert the file to UTF-8",
		r.name, line, r.n, what, s[i], i)
}

// nextLine returns the next non-blank line without its line end ("\n" or "\r\n"), or
// nil at the end of the input. r.line is its line number. The slice is valid until the
// next call.
func (r *Reader) nextLine() ([]byte, error) {
	for {
		r.src.mark = r.consumed()
		line, err := r.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: collect it whole, up to the bound.
			buf := slices.Clone(line)
			for err == bufio.ErrBufferFull {
				if r.src.max > 0 && int64(len(buf)) > r.src.max {
					return nil, r.tooLong(r.line+1, r.src.mark)
				}
				line, err = r.br.ReadSlice('\n')
				buf = append(buf, line...)
			}
			line = buf
		}
		if err != nil && err != io.EOF {
			return nil, r.sourceError(err, r.line+1)
		}
		if r.src.max > 0 && int64(len(bytes.TrimSuffix(line, []byte("\n")))) > r.src.max {
			return nil, r.tooLong(r.line+1, r.src.mark)
		}
		if len(line) == 0 && err == io.EOF {
			return nil, nil
		}
		r.line++
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(bytes.TrimSpace(line)) > 0 || (r.format == FormatTSV && len(line) > 0) {
			return line, nil
		}
		if err == io.EOF {
			return nil, nil
		}
	}
}

func (r *Reader) nextJSONL() error {
	var line []byte
	lineNo := 0
	if r.first != nil {
		line, lineNo, r.first = r.first, r.firstAt, nil
	} else {
		l, err := r.nextLine()
		if err != nil {
			return err
		}
		if l == nil {
			return io.EOF
		}
		line, lineNo = l, r.line
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil || obj == nil {
		if err == nil {
			err = errors.New("null")
		}
		return errorf(ErrMalformedRow, "%s: line %d (row %d): not a JSON object: %w", r.name, lineNo, r.n, err)
	}
	raw, ok := obj[r.opts.TextCol]
	if !ok {
		keys, _ := objectKeys(line)
		return r.missing("key", r.opts.TextCol, keys, lineNo)
	}
	// encoding/json silently replaces invalid UTF-8 with U+FFFD: check the bytes first.
	if !utf8.Valid(raw) {
		return r.badUTF8("text", string(raw), lineNo)
	}
	if len(raw) == 0 || raw[0] != '"' {
		return errorf(ErrMalformedRow, "%s: line %d (row %d): text %s is not a JSON string", r.name, lineNo, r.n, clip(raw))
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		return errorf(ErrMalformedRow, "%s: line %d (row %d): text: %w", r.name, lineNo, r.n, err)
	}
	r.row.Text = text
	r.row.Label, r.row.HasLabel = "", false
	raw, ok = obj[r.opts.LabelCol]
	if !ok {
		if r.opts.RequireLabel {
			keys, _ := objectKeys(line)
			return r.missing("key", r.opts.LabelCol, keys, lineNo)
		}
		return r.splitLabels(lineNo)
	}
	if !utf8.Valid(raw) {
		return r.badUTF8("label", string(raw), lineNo)
	}
	switch c := raw[0]; {
	case c == 'n': // null
	case c == '"':
		var label string
		if err := json.Unmarshal(raw, &label); err != nil {
			return errorf(ErrMalformedRow, "%s: line %d (row %d): label: %w", r.name, lineNo, r.n, err)
		}
		if r.opts.LabelSep == "" {
			label = strings.TrimSpace(label)
		}
		r.row.Label, r.row.HasLabel = label, label != ""
	case c == 't' || c == 'f' || c == '-' || (c >= '0' && c <= '9'):
		r.row.Label, r.row.HasLabel = string(raw), true
	case c == '[':
		return r.arrayLabels(raw, lineNo)
	default:
		return errorf(ErrMalformedRow, "%s: line %d (row %d): label %s is not a string, number or boolean",
			r.name, lineNo, r.n, clip(raw))
	}
	return r.splitLabels(lineNo)
}

// arrayLabels reads a JSONL label that is a JSON array: a label set, taken as it is
// (ReaderOptions.LabelSep is not applied to its elements), which needs a multi-label
// reader. Elements are strings, numbers or booleans (kept as written); each is trimmed
// and must be non-empty and free of the separator (Row.Label joins them with it);
// repeats count once; [] means no labels.
func (r *Reader) arrayLabels(raw json.RawMessage, line int) error {
	bad := func(format string, a ...any) error {
		return errorf(ErrMalformedRow, "%s: line %d (row %d): label %s: %s", r.name, line, r.n, clip(raw), fmt.Sprintf(format, a...))
	}
	if r.opts.LabelSep == "" {
		return bad("a JSON array is a set of labels; read multi-label data with a label separator (pipeline extract --label-sep, ReaderOptions.LabelSep): arrays are taken as they are, strings are split on it")
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return bad("%v", err)
	}
	labels := []string{}
	for i, e := range elems {
		var l string
		switch c := e[0]; {
		case c == '"':
			if err := json.Unmarshal(e, &l); err != nil {
				return bad("element %d: %v", i, err)
			}
		case c == 't' || c == 'f' || c == '-' || (c >= '0' && c <= '9'):
			l = string(e)
		default:
			return bad("element %d (%s) is not a string, number or boolean", i, clip(e))
		}
		l = strings.TrimSpace(l)
		switch {
		case l == "":
			return bad("element %d is an empty label", i)
		case strings.Contains(l, r.opts.LabelSep):
			return bad("element %d (%q) contains the label separator %q, which joins a row's labels in the store and in predictions; choose another separator", i, l, r.opts.LabelSep)
		}
		if !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}
	r.row.Labels, r.row.HasLabel = labels, len(labels) > 0
	r.row.Label = strings.Join(labels, r.opts.LabelSep)
	return nil
}

// objectKeys returns the keys of the JSON object in line, in order, each once.
func objectKeys(line []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("starts with %s", clip(line))
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := tok.(string)
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// clip shortens a JSON value for an error message.
func clip(b []byte) string {
	const max = 40
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// Summary describes a dataset, as one streaming pass of Scan finds it.
type Summary struct {
	// Rows is the number of data rows (at most opts.Limit when set).
	Rows int64
	// Labelled is the number of rows with a label (a non-empty label set with
	// ReaderOptions.LabelSep); EmptyTexts the number whose text is empty or blank
	// (only whitespace and control characters, see Blank).
	Labelled, EmptyTexts int64
	// Labels are the distinct classes, sorted: numerically when every label is a
	// number ("2" before "10"), otherwise by bytes. Labels are trimmed by the Reader;
	// when every label is a number they are compared as numbers and named canonically
	// ("2.0" and "2" are the class "2", see CanonicalLabels). With
	// ReaderOptions.LabelSep, the union of the rows' label sets.
	Labels []string
	// CaseVariants are the groups of Labels that differ only in case ("Card", "card"):
	// probably one class written two ways, worth a warning. Nil when there are none.
	CaseVariants [][]string
	// Columns are the header's columns (see Reader.Columns).
	Columns []string
	// SHA256 is the hex SHA-256 of the whole file's bytes (all of it, even with a
	// Limit); Bytes its size.
	SHA256 string
	Bytes  int64

	class map[string]string // each label as read -> its class in Labels
}

// LabelIndex maps every label as the Reader gives it (Row.Label, or an element of
// Row.Labels) to the index of its class in Labels: "2.0" and "2" map to the index of
// "2" when every label is a number.
func (s Summary) LabelIndex() map[string]int64 {
	at := make(map[string]int64, len(s.Labels))
	for i, l := range s.Labels {
		at[l] = int64(i)
	}
	idx := make(map[string]int64, len(s.class))
	for raw, c := range s.class {
		idx[raw] = at[c]
	}
	for l, i := range at {
		idx[l] = i
	}
	return idx
}

// Scan reads the dataset at path once, streaming, and summarises it: the pre-pass that
// validates a dataset before compute is spent on it, and gives a progress total and the
// label set. It returns the first error a Reader would meet. An input that can be read
// only once (SinglePass: standard input, a FIFO) cannot be scanned and then read: use
// ScanContext with a spool.
func Scan(path string, opts ReaderOptions) (s Summary, err error) {
	if SinglePass(path) {
		return s, fmt.Errorf("%s can be read only once (standard input, a pipe or a device): it cannot be scanned ahead of reading it; save it to a file first, or spool it (ScanContext)", path)
	}
	return ScanContext(context.Background(), path, opts, nil)
}

// ScanContext is Scan that stops when ctx is done, and that copies the input to spool
// when spool is not nil: the second pass then reads the spool, so that an input that
// can be read only once is read once. With a spool, the input is read up to the end of
// the last row taken (opts.Limit) and no further, and SHA256 and Bytes describe the
// spool's bytes: with a Limit, those rows only. Without a spool, they describe the
// whole file, even with a Limit.
func ScanContext(ctx context.Context, path string, opts ReaderOptions, spool *os.File) (s Summary, err error) {
	var tee io.Writer
	h := sha256.New()
	tee = h
	if spool != nil {
		tee = spool
	}
	r, err := openTee(ctx, path, opts, tee)
	if err != nil {
		return s, err
	}
	defer func() {
		if cerr := r.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	s.Columns = r.Columns()
	seen := map[string]bool{}
	for r.Next() {
		row := r.Row()
		s.Rows++
		if Blank(row.Text) {
			s.EmptyTexts++
		}
		if !row.HasLabel {
			continue
		}
		s.Labelled++
		if opts.LabelSep != "" {
			for _, l := range row.Labels {
				if !seen[l] {
					seen[l] = true
					s.Labels = append(s.Labels, l)
				}
			}
		} else if !seen[row.Label] {
			seen[row.Label] = true
			s.Labels = append(s.Labels, row.Label)
		}
	}
	if err := r.Err(); err != nil {
		return s, err
	}
	s.class = CanonicalLabels(s.Labels)
	s.Labels = s.Labels[:0]
	for _, c := range s.class {
		if !slices.Contains(s.Labels, c) {
			s.Labels = append(s.Labels, c)
		}
	}
	SortLabels(s.Labels)
	s.CaseVariants = caseVariants(s.Labels)
	if spool == nil {
		// Hash what the reader did not need (after a Limit), not bound to rows.
		r.src.max = 0
		if _, err := io.Copy(io.Discard, r.src); err != nil {
			return s, r.sourceError(err, 0)
		}
		s.SHA256 = hex.EncodeToString(h.Sum(nil))
		s.Bytes = r.src.n
		return s, nil
	}
	// The spool holds what was read, read-ahead included: keep what the rows took.
	end := r.src.n
	if opts.Limit > 0 && s.Rows >= int64(opts.Limit) {
		end = r.consumed()
	}
	if err := spool.Truncate(end); err != nil {
		return s, fmt.Errorf("spooling %s: %w", path, err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return s, fmt.Errorf("spooling %s: %w", path, err)
	}
	if _, err := io.Copy(h, spool); err != nil {
		return s, fmt.Errorf("spooling %s: %w", path, err)
	}
	s.SHA256 = hex.EncodeToString(h.Sum(nil))
	s.Bytes = end
	return s, nil
}
