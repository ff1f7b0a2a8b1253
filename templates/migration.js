// Migration {{id}}: {{name}}
// Created {{createdAt}} by `magflock migration new --js`.
// generateSql() must return the SQL to run, the same every time (its text is hashed).
// It runs in its own transaction, like a .sql migration.

export const generateSql = () => `
-- SQL here
`
