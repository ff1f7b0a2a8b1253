/**
 * A small SQL lexer, just enough to lint migration files: it splits a script into
 * statements on top-level `;` and lists the bare words of each statement, skipping
 * comments (`--`, nested `/* *\/`), string literals ('…', E'…' with backslash escapes),
 * quoted identifiers ("…") and dollar-quoted bodies ($$…$$, $tag$…$tag$).
 *
 * It does not parse SQL; it only has to agree with Postgres on where statements end.
 */
export interface SqlStatement {
  /** 0-based offset of the statement's first significant character. */
  start: number
  /** Upper-cased bare words outside strings, identifiers and comments. */
  words: string[]
}

export function splitStatements(sql: string): SqlStatement[] {
  const out: SqlStatement[] = []
  let cur: SqlStatement | undefined
  const n = sql.length
  let i = 0
  const begin = (at: number) => {
    if (!cur) cur = { start: at, words: [] }
    return cur
  }
  while (i < n) {
    const c = sql[i]!
    const next = sql[i + 1]
    if (c === '-' && next === '-') {
      const eol = sql.indexOf('\n', i)
      i = eol < 0 ? n : eol + 1
    } else if (c === '/' && next === '*') {
      let depth = 1
      i += 2
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++
          i += 2
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--
          i += 2
        } else i++
      }
    } else if (c === ';') {
      if (cur) out.push(cur)
      cur = undefined
      i++
    } else if (c === "'") {
      begin(i)
      const escapes = i > 0 && /[eE]/.test(sql[i - 1]!) && (i < 2 || !/[A-Za-z0-9_]/.test(sql[i - 2]!))
      i = skipQuoted(sql, i + 1, "'", escapes)
    } else if (c === '"') {
      begin(i)
      i = skipQuoted(sql, i + 1, '"', false)
    } else if (c === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64))
      if (m && !(i > 0 && /[A-Za-z0-9_]/.test(sql[i - 1]!))) {
        begin(i)
        const tag = m[0]
        const end = sql.indexOf(tag, i + tag.length)
        i = end < 0 ? n : end + tag.length
      } else {
        begin(i)
        i++
      }
    } else if (/\s/.test(c)) {
      i++
    } else if (/[A-Za-z_]/.test(c)) {
      const st = begin(i)
      let j = i + 1
      while (j < n && /[A-Za-z0-9_$]/.test(sql[j]!)) j++
      st.words.push(sql.slice(i, j).toUpperCase())
      i = j
    } else {
      begin(i)
      i++
    }
  }
  if (cur) out.push(cur)
  return out
}

function skipQuoted(sql: string, i: number, quote: string, backslashEscapes: boolean): number {
  const n = sql.length
  while (i < n) {
    const c = sql[i]
    if (backslashEscapes && c === '\\') {
      i += 2
    } else if (c === quote) {
      if (sql[i + 1] === quote) i += 2
      else return i + 1
    } else i++
  }
  return n
}

/** 1-based line and column of a 0-based character offset. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1
  let lastNl = -1
  const end = Math.min(offset, text.length)
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++
      lastNl = i
    }
  }
  return { line, column: end - lastNl }
}
