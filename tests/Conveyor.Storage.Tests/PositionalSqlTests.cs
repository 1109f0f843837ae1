using Conveyor.Storage.Postgres;
using Npgsql;

namespace Conveyor.Storage.Tests;

/// <summary>The numbering of named placeholders in the PostgreSQL store's hot statements (no database needed).</summary>
public sealed class PositionalSqlTests
{
    [Fact]
    public void Names_become_positions_in_the_order_given_and_the_schema_is_filled_in()
    {
        var sql = new PositionalSql("s1", "SELECT @b::int, @a, @b FROM {s}.t WHERE x = @a", "a", "b");
        Assert.Equal("SELECT $2::int, $1, $2 FROM \"s1\".t WHERE x = $1", sql.Text);
    }

    [Fact]
    public void A_placeholder_missing_from_the_list_or_a_listed_name_never_used_is_refused()
    {
        Assert.Throws<InvalidOperationException>(() => new PositionalSql("s", "SELECT @a, @c", "a"));
        Assert.Throws<InvalidOperationException>(() => new PositionalSql("s", "SELECT @a", "a", "b"));
    }

    [Fact]
    public void Values_must_come_in_the_statements_order()
    {
        var sql = new PositionalSql("s", "SELECT @a, @b", "a", "b");
        using var command = new NpgsqlCommand(sql.Text);
        Assert.Throws<InvalidOperationException>(() => sql.Add(command.Parameters, "b", 2));
        sql.Add(command.Parameters, "a", 1);
        sql.Add(command.Parameters, "b", "two");
        Assert.Throws<InvalidOperationException>(() => sql.Add(command.Parameters, "b", 3));
        Assert.All(command.Parameters, p => Assert.Equal("", p.ParameterName));
        Assert.Equal("two", ((NpgsqlParameter<string>)command.Parameters[1]).TypedValue);
    }
}
