// graphile-worker 0.18's drain statements for its batched preset, as it sends them (for bench tools that run them alone).

export const GRAPHILE_SCHEMA = 'graphile_worker'
const W = GRAPHILE_SCHEMA

// The id of the bench's task ('noop'), which get_job takes as its task list (after a first add_job).
export const NOOP_TASK_ID = `select id from ${W}._private_tasks where identifier = 'noop'`

// Its get_job for its batched preset (dist/sql/getJobs.js, constructQuery
// with batchSize 500, no flags, database time, named-queue strategy 2), sent as it sends it: named.
export const GET_JOB_500 = `with j_raw as (
  select jobs.job_queue_id, jobs.priority, jobs.run_at, jobs.id
    from ${W}._private_jobs as jobs
    where jobs.is_available = true
    and run_at <= now()
    and task_id = any($2::int[])
    and (jobs.job_queue_id is null or jobs.job_queue_id in (
      select id from ${W}._private_job_queues as job_queues
       where job_queues.is_available = true for update skip locked))
    order by priority asc, run_at asc
    limit 500
    for update
    skip locked
), j as (
  select distinct on (job_queue_id, case when job_queue_id is null then id end)
      job_queue_id, priority, run_at, id
    from j_raw
    order by job_queue_id, case when job_queue_id is null then id end, priority asc, run_at asc
), q as (
  update ${W}._private_job_queues as job_queues
     set locked_by = $1::text, locked_at = now()
    from j where job_queues.id = j.job_queue_id
)
  update ${W}._private_jobs as jobs
    set attempts = jobs.attempts + 1, locked_by = $1::text, locked_at = now()
    from j
    where jobs.id = j.id
    returning *`

// Its batched completion of jobs without a queue (dist/sql/completeJobs.js): the rows are deleted.
export const COMPLETE_JOBS = `delete from ${W}._private_jobs as jobs
using unnest($1::bigint[]) n(n)
where id = n`
