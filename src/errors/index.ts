export * from './define.js'
export * from './common.js'
