import { describe, expect, it } from 'vitest'
import { lineColumn, splitStatements } from '../../../src/migrations/sql-lexer.js'

const count = (sql: string) => splitStatements(sql).length

describe('splitStatements', () => {
  it.each([
    ['CREATE TABLE a (id int);', 1],
    ['CREATE TABLE a (id int); CREATE TABLE b (id int);', 2],
    ['SELECT 1;;;\n', 1],
    ['-- only a comment\n', 0],
    ['/* outer /* nested ; */ still comment ; */ SELECT 1', 1],
    ["SELECT 'a;b', 'it''s; fine';", 1],
    ["SELECT E'back\\'slash;';", 1],
    ['SELECT "odd;name" FROM t;', 1],
    ['CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; SELECT 2; $$ LANGUAGE sql;', 1],
    ['DO $body$ BEGIN PERFORM 1; END $body$; SELECT 2;', 2],
    ['PREPARE p AS SELECT $1; EXECUTE p(1);', 2],
    ['-- postgres-migrations disable-transaction\nCREATE INDEX CONCURRENTLY i ON t (v);\n-- trailing\n', 1],
  ])('%s → %i statements', (sql, n) => {
    expect(count(sql)).toBe(n)
  })

  it('lists the bare words of a statement, upper-cased, outside strings and comments', () => {
    const [st] = splitStatements("create /* CONCURRENTLY */ index 'CONCURRENTLY' on t")
    expect(st?.words).toEqual(['CREATE', 'INDEX', 'ON', 'T'])
  })
})

describe('lineColumn', () => {
  it('maps a 0-based offset to 1-based line and column', () => {
    expect(lineColumn('ab\ncd\nef', 0)).toEqual({ line: 1, column: 1 })
    expect(lineColumn('ab\ncd\nef', 4)).toEqual({ line: 2, column: 2 })
    expect(lineColumn('ab\ncd\nef', 6)).toEqual({ line: 3, column: 1 })
  })
})
