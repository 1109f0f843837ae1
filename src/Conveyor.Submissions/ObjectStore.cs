namespace Conveyor.Submissions;

/// <summary>
/// Where large chunk bodies live: inputs at <c>&lt;prefix&gt;/&lt;index&gt;-in.bin</c>, outputs at
/// <c>&lt;prefix&gt;/&lt;index&gt;-out.bin</c>. A directory by default; kept this small so S3 or GCS can follow.
/// </summary>
public interface IObjectStore
{
    /// <summary>The name consumers see in a body reference (<c>fs</c> for the directory store).</summary>
    string Name { get; }

    /// <summary>The object's content, or null when there is no such object.</summary>
    ValueTask<Stream?> OpenReadAsync(string key, CancellationToken cancellationToken);

    /// <summary>Writes the object whole: readers see the old object or the new one, never a part.</summary>
    ValueTask WriteAsync(string key, Stream content, CancellationToken cancellationToken);

    ValueTask<bool> ExistsAsync(string key, CancellationToken cancellationToken);
}

/// <summary>The default object store: one file per key under a root directory.</summary>
public sealed class DirectoryObjectStore : IObjectStore
{
    private readonly string _root;

    public DirectoryObjectStore(string root)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        _root = Path.GetFullPath(root);
        Directory.CreateDirectory(_root);
    }

    public string Name => "fs";

    public string Root => _root;

    public ValueTask<Stream?> OpenReadAsync(string key, CancellationToken cancellationToken)
    {
        var path = PathOf(key);
        try
        {
            return ValueTask.FromResult<Stream?>(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024, useAsync: true));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return ValueTask.FromResult<Stream?>(null);
        }
    }

    public async ValueTask WriteAsync(string key, Stream content, CancellationToken cancellationToken)
    {
        var path = PathOf(key);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        // Write beside the target, flush to disk, then rename: a crash leaves the old file or the new one, never half of one.
        var temporary = $"{path}.{Guid.NewGuid():N}.tmp";
        try
        {
            await using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 64 * 1024, useAsync: true))
            {
                await content.CopyToAsync(file, cancellationToken);
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }

    public ValueTask<bool> ExistsAsync(string key, CancellationToken cancellationToken) => ValueTask.FromResult(File.Exists(PathOf(key)));

    private string PathOf(string key)
    {
        if (ObjectKeys.Check(key) is { } problem) throw new ArgumentException(problem, nameof(key));
        return Path.Combine(_root, key);
    }
}
