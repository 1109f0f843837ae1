namespace WorkToDo.Core;

/// <summary>
/// Every SQL statement of the example, PostgreSQL dialect, with the schema name substituted once (it is validated as a
/// plain identifier, so it is safe to format in). The app applies <see cref="Schema"/> itself at start.
/// </summary>
internal sealed class WorkSql(string schema)
{
    private const string WorkColumns = "id, work_code, add_up_to, done, result, created_on, updated_on";

    /// <summary>
    /// Idempotent DDL. Serialized by an advisory lock because the API and the consumer apply it at the same time on a fresh
    /// database, and concurrent <c>CREATE … IF NOT EXISTS</c> can still collide in the catalog.
    /// </summary>
    public string Schema { get; } = $"""
        SELECT pg_advisory_xact_lock(hashtext('worktodo-schema:{schema}'));
        CREATE SCHEMA IF NOT EXISTS {schema};
        CREATE TABLE IF NOT EXISTS {schema}.work (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            work_code   text    NOT NULL UNIQUE,
            add_up_to   integer NOT NULL CHECK (add_up_to >= 1),
            done        boolean NOT NULL DEFAULT false,
            result      bigint,
            created_on  bigint  NOT NULL,
            updated_on  bigint  NOT NULL,
            CONSTRAINT work_result_iff_done CHECK (done = (result IS NOT NULL))
        );
        CREATE INDEX IF NOT EXISTS work_code_prefix ON {schema}.work (work_code text_pattern_ops);
        CREATE INDEX IF NOT EXISTS work_created_on ON {schema}.work (created_on);
        CREATE TABLE IF NOT EXISTS {schema}.events (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            work_code   text   NOT NULL REFERENCES {schema}.work (work_code) ON DELETE CASCADE,
            variable    text   NOT NULL,
            value       text   NOT NULL,
            created_on  bigint NOT NULL
        );
        CREATE INDEX IF NOT EXISTS events_work_code ON {schema}.events (work_code, id);
        """;

    public string Insert { get; } =
        $"INSERT INTO {schema}.work (work_code, add_up_to, created_on, updated_on) VALUES (@code, @add_up_to, @now, @now) RETURNING {WorkColumns}";

    /// <summary>A redelivered demand finds its work already there: no second row.</summary>
    public string InsertIfAbsent { get; } = $"""
        INSERT INTO {schema}.work (work_code, add_up_to, created_on, updated_on) VALUES (@code, @add_up_to, @now, @now)
        ON CONFLICT (work_code) DO NOTHING RETURNING {WorkColumns}
        """;

    public string ById { get; } = $"SELECT {WorkColumns} FROM {schema}.work WHERE id = @id";

    public string ByCode { get; } = $"SELECT {WorkColumns} FROM {schema}.work WHERE work_code = @code";

    /// <summary>Row lock: two deliveries of the same job compute one after the other, and the second sees done.</summary>
    public string ByIdForUpdate { get; } = $"SELECT {WorkColumns} FROM {schema}.work WHERE id = @id FOR UPDATE";

    public string Search { get; } = $"""
        SELECT {WorkColumns} FROM {schema}.work
        WHERE work_code LIKE @pattern ESCAPE '\' AND created_on >= @since
        ORDER BY id DESC LIMIT @limit
        """;

    public string Events { get; } = $"SELECT work_code, variable, value, created_on FROM {schema}.events WHERE work_code = @code ORDER BY id";

    public string InsertEvent { get; } = $"INSERT INTO {schema}.events (work_code, variable, value, created_on) VALUES (@code, @variable, @value, @now)";

    public string Finish { get; } =
        $"UPDATE {schema}.work SET done = true, result = @result, updated_on = @now WHERE id = @id RETURNING {WorkColumns}";

    /// <summary>API works still waiting after a while: their compute job may never have been enqueued (see the API's requeuer).</summary>
    public string PendingApiWork { get; } = $"""
        SELECT id FROM {schema}.work
        WHERE NOT done AND work_code LIKE '{WorkCodes.ApiPrefix}%' AND created_on <= @before
        ORDER BY id LIMIT @limit
        """;

    public string Delete { get; } = $"DELETE FROM {schema}.work WHERE id = @id";
}
