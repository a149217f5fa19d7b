// push.test.ts — an integration test of lua-scripts/webhook.lua
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createTestHost, type TestHost } from 'dovepush/testing'

let t: TestHost

beforeAll(async () => {
  t = await createTestHost({
    script: 'lua-scripts/webhook.lua',
    // {{sink}} is the built-in local HTTP sink that records every request
    settings: { push_lua_url: '{{sink}}/hook', push_lua_token: 's3cret' },
  })
})

afterAll(async () => {
  await t.close()
})

it('posts each new message as JSON', async () => {
  await t.deliver({
    to: 'alice@example.test',
    message: { from: 'Bob <bob@example.test>', subject: 'Lunch?', body: 'At noon, usual place.' },
  })
  const [request] = t.newRequests()
  expect(request?.method).toBe('POST')
  expect(request?.path).toBe('/hook')
  expect(request?.header('Authorization')).toBe('Bearer s3cret')
  expect(request?.json()).toEqual({
    user: 'alice@example.test',
    mailbox: 'INBOX',
    uid: 1,
    from: 'bob@example.test',
    from_name: 'Bob',
    subject: 'Lunch?',
    snippet: 'At noon, usual place.',
  })
})

it('stays quiet when Alice reads, flags or files the message', async () => {
  await t.addFlags({ user: 'alice@example.test', mailbox: 'INBOX', uids: 1, flags: ['\\Seen', '\\Flagged'] })
  await t.create({ user: 'alice@example.test', mailbox: 'Archive' })
  await t.move({ user: 'alice@example.test', mailbox: 'INBOX', uids: 1, to: 'Archive' })
  expect(t.newRequests()).toEqual([])
  expect(t.store.user('alice@example.test').get('Archive')?.messages).toHaveLength(1)
  expect(t.logsAt('error')).toEqual([])
})
