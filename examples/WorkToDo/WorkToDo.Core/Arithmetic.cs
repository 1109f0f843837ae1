namespace WorkToDo.Core;

/// <summary>The business rule: the work is the sum 1 + 2 + … + n.</summary>
public static class Arithmetic
{
    public const int MinAddUpTo = 1;
    public const int MaxAddUpTo = 99;

    /// <summary>Adds the integers 1..<paramref name="addUpTo"/> inclusive, one by one: that loop is "the work" (0 for n &lt; 1).</summary>
    public static long SumTo(int addUpTo)
    {
        long sum = 0;
        for (var i = 1; i <= addUpTo; i++) sum += i;
        return sum;
    }

    /// <summary>A random add_up_to in 1–99, as both the API and the producer pick it.</summary>
    public static int RandomAddUpTo() => Random.Shared.Next(MinAddUpTo, MaxAddUpTo + 1);
}
