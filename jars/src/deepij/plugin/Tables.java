package deepij.plugin;

import ij.measure.ResultsTable;

import java.util.List;
import java.util.Map;

/** Tables from the worker (columns of numbers or text, see deepij's {@code serve_run.table_message}). */
final class Tables {

    private Tables() {
    }

    /** A new ResultsTable holding the table the worker described. */
    static ResultsTable read(Map<String, Object> described) {
        int rows = Json.integer(described, "rows", 0);
        ResultsTable table = new ResultsTable(rows);
        for (Map<String, Object> column : Json.maps(described, "columns")) {
            String heading = Json.string(column, "name");
            List<?> values = (List<?>) column.get("values");
            if (rows == 0) {
                table.setValue(heading, 0, 0.0); // creates the column, then the row goes
                table.deleteRow(0);
                continue;
            }
            for (int row = 0; row < rows && row < values.size(); row++) {
                Object cell = values.get(row);
                if (cell instanceof Number)
                    table.setValue(heading, row, ((Number) cell).doubleValue());
                else if (cell == null)
                    table.setValue(heading, row, Double.NaN);
                else
                    table.setValue(heading, row, cell.toString());
            }
        }
        List<String> labels = Json.strings(described, "labels");
        for (int row = 0; row < labels.size() && row < rows; row++)
            table.setLabel(labels.get(row), row);
        return table;
    }
}
