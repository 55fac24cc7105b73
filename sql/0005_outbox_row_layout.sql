-- 0005: mailer.email_outbox rebuilt with the columns a claim or a settlement changes at the end of the row.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: Postgres logs an update whose new row version stays on the same page as only the bytes
-- between the longest unchanged prefix and suffix of the row. With status, attempts and the lease
-- in the middle of the row, every claim and every settlement logged the whole row, message
-- included (about 240 bytes of WAL each), and most new versions went to another page, which also
-- logs a row lock. With those columns last and room on the page, each logs its tail only.
-- The room: fillfactor 45 leaves a freshly inserted page enough space for a new version of every
-- row on it (a claimed version is up to ~25 % longer: owner, token, expiry), and pruning frees the
-- old versions before the settlement writes the next. Measured on a bulk drain: 1,047 -> 720 bytes
-- of WAL per row (fillfactor 80: 963; 50: 738). The price is disk: the heap holds about twice
-- its live data.
--
-- Not-null constraints are named as Postgres 18 names them on a new table, since the old table still
-- holds the generated names while the new one is created.
--
-- The copy holds an ACCESS EXCLUSIVE lock on the table for as long as it takes (O(rows)).
-- Ids, the identity sequence's position, privileges and the owner carry over; the indexes,
-- constraints, trigger and comment are recreated as they were.

lock table mailer.email_outbox in access exclusive mode;

alter table mailer.email_outbox rename to email_outbox_old;
alter sequence mailer.email_outbox_id_seq rename to email_outbox_old_id_seq;
alter index mailer.email_outbox_pkey rename to email_outbox_old_pkey;
alter index mailer.email_outbox_claim_idx rename to email_outbox_old_claim_idx;
alter index mailer.email_outbox_sending_idx rename to email_outbox_old_sending_idx;
alter index mailer.email_outbox_dedupe_idx rename to email_outbox_old_dedupe_idx;

create table mailer.email_outbox (
  -- Set when the row is written and changed rarely after (send_at by a retry).
  id                  bigint constraint email_outbox_id_not_null not null generated always as identity primary key,
  tenant              text        constraint email_outbox_tenant_not_null not null default 'default',
  dedupe_key          text,
  priority            smallint    constraint email_outbox_priority_not_null not null default 0,
  send_at             timestamptz constraint email_outbox_send_at_not_null not null default now(),
  expires_at          timestamptz,
  max_attempts        integer,
  created_at          timestamptz constraint email_outbox_created_at_not_null not null default now(),
  correlation_id      text,
  -- Exactly one of: a message given to enqueue_email, or a template + the source row a trigger saw.
  message             jsonb,
  template            text,
  source_row          jsonb,
  -- Changed by a cancel, a settlement or a claim: keep these last (see the top of this file).
  cancel_requested_at timestamptz,
  last_error_code     text,
  last_error          text,
  sent_at             timestamptz,
  attempts            integer     constraint email_outbox_attempts_not_null not null default 0,
  status              text        constraint email_outbox_status_not_null not null default 'pending',
  -- Lease: set by a claim, fenced on every later write. None of these columns is indexed, so a
  -- heartbeat (lease_expires_at only) stays a HOT update.
  lease_owner         text,
  lease_token         uuid,
  lease_expires_at    timestamptz,
  send_started_at     timestamptz,
  constraint email_outbox_status_check
    check (status in ('pending', 'sending', 'sent', 'failed', 'cancelled')),
  constraint email_outbox_content_check
    check ((message is not null and template is null) or (message is null and template is not null)),
  constraint email_outbox_max_attempts_check check (max_attempts is null or max_attempts between 1 and 100),
  constraint email_outbox_lease_check
    check ((status = 'sending') = (lease_token is not null and lease_expires_at is not null)),
  constraint email_outbox_expiry_check check (expires_at is null or expires_at > send_at)
) with (fillfactor = 45, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

insert into mailer.email_outbox (
  id, tenant, dedupe_key, priority, send_at, expires_at, max_attempts, created_at, correlation_id,
  message, template, source_row, cancel_requested_at, last_error_code, last_error, sent_at, attempts,
  status, lease_owner, lease_token, lease_expires_at, send_started_at
) overriding system value
select id, tenant, dedupe_key, priority, send_at, expires_at, max_attempts, created_at, correlation_id,
       message, template, source_row, cancel_requested_at, last_error_code, last_error, sent_at, attempts,
       status, lease_owner, lease_token, lease_expires_at, send_started_at
  from mailer.email_outbox_old
 order by id;

-- Ids are never reused, including those of rows deleted before this migration.
select setval('mailer.email_outbox_id_seq', s.last_value, s.is_called) from mailer.email_outbox_old_id_seq s;

do $$
declare
  old regclass := 'mailer.email_outbox_old'::regclass;
  owner_name name;
  g record;
begin
  select r.rolname into owner_name from pg_class c join pg_roles r on r.oid = c.relowner where c.oid = old;
  execute format('alter table mailer.email_outbox owner to %I', owner_name);
  for g in
    select a.privilege_type, a.is_grantable,
           case when a.grantee = 0 then 'public' else quote_ident(r.rolname) end as grantee
      from pg_class c, aclexplode(c.relacl) a left join pg_roles r on r.oid = a.grantee
     where c.oid = old and a.grantee <> c.relowner
  loop
    execute format('grant %s on mailer.email_outbox to %s%s', g.privilege_type, g.grantee,
                   case when g.is_grantable then ' with grant option' else '' end);
  end loop;
end $$;

drop table mailer.email_outbox_old;

comment on table mailer.email_outbox is 'One row per e-mail. Written by mailer.enqueue_email / mailer.enqueue_from_row, drained by outbox-mailer.';

-- Serves exactly the claim: status = 'pending' and send_at <= now() order by priority, send_at, id.
create index email_outbox_claim_idx on mailer.email_outbox (priority, send_at, id) where status = 'pending';
-- Serves reclaiming expired leases; tiny because only in-flight rows are in it.
create index email_outbox_sending_idx on mailer.email_outbox (id) where status = 'sending';
-- A dedupe key is unique per tenant.
create unique index email_outbox_dedupe_idx on mailer.email_outbox (tenant, dedupe_key) where dedupe_key is not null;

create trigger email_outbox_notify after insert on mailer.email_outbox
  for each statement execute function mailer.notify_outbox();

analyze mailer.email_outbox;
